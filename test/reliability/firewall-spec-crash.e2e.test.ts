// An apply that moves the rule band, killed when its nft transaction is sent (none of it runs): the
// record written before it keeps the firewall spec that was in force. The next apply fails (ip
// refuses a route) and is rolled back: its roll back puts that spec back, not the killed run's,
// which never was on the node.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createFaultTools } from "./support/fault-tools.ts";
import {
  assertSameDump,
  configDir,
  createNode,
  e2eUnavailable,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-spec-crash-");
const A = "  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }";
const B = "  - { name: blue, addresses: [5.6.7.0/24], interface: ext0, gateway: 5.6.7.1 }";
const C = "  - { name: green, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1 }";
const config = (name: string, band: string, ...networks: string[]): string =>
  writeConfigFile(dir, `${name}.yaml`, `rulePriorities: ${band}\nnetworks:\n${networks.join("\n")}\n`);

const ruleset = (node: Netns): string => {
  const listed = node.exec(["nft", "list", "ruleset"]);
  assert.equal(listed.code, 0, listed.stderr);
  return listed.stdout;
};

test(
  "killed before its firewall ran, then a failed apply: the roll back puts back the firewall in force",
  { skip },
  (t) => {
    const tools = createFaultTools();
    t.after(() => tools.remove());
    const node = createNode(t);
    const start = node.dump();
    const first = config("first", "{from: 1000, to: 1999}", A);
    assert.equal(node.symroute(["apply", "-c", first]).code, 0);
    const inForce = ruleset(node);

    const killed = node.symroute(
      ["apply", "-c", config("moved", "{from: 3000, to: 3999}", A, B)],
      tools.env({ kind: "crash", tool: "nft", call: 1, lines: 0 }),
    );
    assert.equal(killed.code, 137, `killed: ${killed.stdout}${killed.stderr}`);
    assert.equal(ruleset(node), inForce, "none of the killed run's firewall ran");

    const next = config("next", "{from: 1000, to: 1999}", A, C);
    const failed = node.symroute(
      ["apply", "-c", next],
      tools.env({
        kind: "corrupt",
        tool: "ip",
        match: "^route .*via 9\\.9\\.9\\.1",
        sed: "s/via 9\\.9\\.9\\.1/via 9.9.9.1 garbage/",
      }),
    );
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stderr, /apply failed and was rolled back/);
    assert.equal(ruleset(node), inForce, "the firewall is the one in force before the killed run");

    assert.equal(node.symroute(["apply", "-c", next]).code, 0);
    assert.equal(node.symroute(["plan", "-c", next]).code, 0);
    assert.equal(node.symroute(["delete"]).code, 0);
    assertSameDump(start, node.dump(), "after the killed apply, the failed one and delete");
  },
);
