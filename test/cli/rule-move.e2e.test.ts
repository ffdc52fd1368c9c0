// A rule that moves to another priority is added before the old one is deleted (no moment without
// a rule for its packets): the band grows from four priorities (exemptions at 1000, network rules
// at 1001) to the full layout with the skip rule (exemptions at 1003, source rules at 1004), the
// move the skip rule's introduction made. The order is read from the payload `plan --payloads -o
// json` prints, the same that apply runs; the apply then converges.

import { test } from "node:test";
import assert from "node:assert/strict";
import { configDir, createNode, e2eUnavailable, writeConfigFile } from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-move-");
const withBand = (to: number): string =>
  writeConfigFile(
    dir,
    `band-${to}.yaml`,
    `podCIDRs: [10.112.0.0/12]
rulePriorities: { from: 1000, to: ${to} }
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: blue, addresses: [5.6.7.0/24], interface: ext0, gateway: 5.6.7.1 }
  - { name: green, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1 }
  - { name: ipvs, addresses: [10.3.3.0/24], interface: ext0, gateway: 10.3.3.1, method: source }
`,
  );

test(
  "exemption rules moved by a wider band: each new rule is added before its old one is deleted",
  { skip },
  (t) => {
    const node = createNode(t);
    const narrow = node.symroute(["apply", "-c", withBand(1003)]);
    assert.equal(narrow.code, 0, narrow.stdout + narrow.stderr);
    const wide = withBand(1999);
    const plan = node.symroute(["plan", "-c", wide, "-o", "json", "--payloads"]);
    assert.equal(plan.code, 2, plan.stderr);
    const lines = (JSON.parse(plan.stdout) as { payloads: { ip: { ipv4: string[] } } }).payloads.ip.ipv4;
    const deleted = lines.filter((l) => l.startsWith("rule del priority 1000 "));
    assert.ok(deleted.length > 0, `exemptions at 1000 deleted:\n${lines.join("\n")}`);
    for (const del of deleted) {
      // The same rule at its new priority.
      const add = del.replace("rule del priority 1000 ", "rule add priority 1003 ");
      assert.ok(lines.includes(add), `${add} in:\n${lines.join("\n")}`);
      assert.ok(lines.indexOf(add) < lines.indexOf(del), `${add} before ${del}:\n${lines.join("\n")}`);
    }
    const applied = node.symroute(["apply", "-c", wide]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal(node.symroute(["plan", "-c", wide]).code, 0);
  },
);
