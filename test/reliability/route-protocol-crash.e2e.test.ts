// A move of `routeProtocol` killed half way (SIGKILL from the `ip -batch` wrapper, after the routes
// were replaced and some rules added under the new number, before any old rule was deleted): the
// node holds symroute's rules under both numbers, and the state file written before the batch names
// both. The next apply converges (nothing left under the old number, plan in sync, the old number
// gone from the state), and a delete instead, from the state alone, leaves the node as it was.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
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
const dir = configDir("symroute-proto-crash-");
const OLD = 201;
const NEW = 202;
// IPv4 only: one ip batch, so that the wrapper's first payload call is the move's.
const config = (protocol: number): string =>
  writeConfigFile(
    dir,
    `proto-${protocol}.yaml`,
    `routeProtocol: ${protocol}
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: blue, addresses: [5.6.7.0/24], interface: ext0, gateway: 5.6.7.1 }
  - { name: green, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1 }
`,
  );

/** How many routes and rules carry `protocol`. */
function carrying(node: Netns, protocol: number): number {
  let n = 0;
  for (const what of ["route", "rule"]) {
    const argv =
      what === "route" ? ["ip", "-j", "route", "show", "table", "all"] : ["ip", "-j", "rule", "show"];
    const listed = node.exec(argv);
    assert.equal(listed.code, 0, listed.stderr);
    n += (JSON.parse(listed.stdout || "[]") as { protocol?: string }[]).filter(
      (o) => o.protocol === String(protocol),
    ).length;
  }
  return n;
}

function savedState(node: Netns): {
  routeProtocol?: number;
  formerRouteProtocols?: number[];
  inProgress?: boolean;
} {
  const [netns] = readdirSync(node.stateDir).filter((d) => d.startsWith("netns-"));
  assert.ok(netns !== undefined, `a state directory in ${node.stateDir}`);
  return JSON.parse(readFileSync(join(node.stateDir, netns, "state.json"), "utf8")) as ReturnType<
    typeof savedState
  >;
}

for (const next of ["apply", "delete"] as const) {
  test(`routeProtocol move killed half way, then ${next}: both numbers are symroute's`, { skip }, (t) => {
    const tools = createFaultTools();
    t.after(() => tools.remove());
    const node = createNode(t);
    const start = node.dump();
    const first = node.symroute(["apply", "-c", config(OLD)]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const owned = carrying(node, OLD);

    // The kill point: every route replaced and two rules added under the new number.
    const plan = node.symroute(["plan", "-c", config(NEW), "-o", "json", "--payloads"]);
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    const lines = (JSON.parse(plan.stdout) as { payloads: { ip: { ipv4: string[] } } }).payloads.ip.ipv4;
    const firstRuleAdd = lines.findIndex((l) => l.startsWith("rule add "));
    assert.ok(
      firstRuleAdd > 0 && lines.findIndex((l) => l.startsWith("rule del ")) > firstRuleAdd + 2,
      lines.join("\n"),
    );
    const killed = node.symroute(
      ["apply", "-c", config(NEW)],
      tools.env({ kind: "crash", tool: "ip", call: 1, lines: firstRuleAdd + 2 }),
    );
    assert.equal(killed.code, 137, `killed: ${killed.stdout}${killed.stderr}`);
    assert.equal(carrying(node, OLD), owned - firstRuleAdd, "old rules left, old routes replaced");
    assert.equal(carrying(node, NEW), firstRuleAdd + 2);
    const crashed = savedState(node);
    assert.deepEqual(
      [crashed.routeProtocol, crashed.formerRouteProtocols, crashed.inProgress],
      [NEW, [OLD], true],
    );

    if (next === "apply") {
      const applied = node.symroute(["apply", "-c", config(NEW)]);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      assert.equal(carrying(node, OLD), 0);
      assert.equal(carrying(node, NEW), owned);
      const state = savedState(node);
      assert.deepEqual(
        [state.routeProtocol, state.formerRouteProtocols, state.inProgress],
        [NEW, undefined, undefined],
      );
      assert.equal(node.symroute(["plan", "-c", config(NEW)]).code, 0);
      assert.equal(node.symroute(["delete"]).code, 0);
    } else {
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
    }
    assert.equal(carrying(node, OLD) + carrying(node, NEW), 0);
    assertSameDump(start, node.dump(), `after the killed move and ${next}`);
  });
}
