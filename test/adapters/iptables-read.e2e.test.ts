// A table that iptables cannot list must not read as "nothing of symroute's": iptables-nft prints
// only "# Table `mangle' is incompatible" (exit 0) once another tool added a rule with nft that it
// cannot show, and an apply that took that for an empty table inserted symroute's jump from
// PREROUTING a second time (iptables keeps duplicates; delete's -D removes one copy).

import { test } from "node:test";
import assert from "node:assert/strict";
import { configDir, createNode, e2eUnavailable, writeConfigFile } from "../support/netns.ts";

const skip = e2eUnavailable();
const CONFIG = writeConfigFile(
  configDir("symroute-iptread-"),
  "one.yaml",
  `firewall: iptables
podCIDRs: [10.112.0.0/12]
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
);

test(
  "a mangle table iptables cannot list is an error, not a reason to insert the jumps again",
  { skip },
  (t) => {
    const node = createNode(t);
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr);
    const jumps = (): number =>
      node
        .exec(["nft", "list", "chain", "ip", "mangle", "PREROUTING"])
        .stdout.split("\n")
        .filter((l) => / jump SYMROUTE-/.test(l)).length;
    const before = jumps();
    assert.ok(before > 0, "symroute's jump from PREROUTING");

    // Another tool's rule that iptables-nft cannot show (measured: iptables-save then exits 0 and
    // lists nothing of the table).
    node.exec([
      "nft",
      "add",
      "rule",
      "ip",
      "mangle",
      "PREROUTING",
      "meta",
      "l4proto",
      "udp",
      "ct",
      "mark",
      "set",
      "0x5",
    ]);
    assert.match(node.exec(["iptables-save", "-t", "mangle"]).stdout, /incompatible/);

    const again = node.symroute(["apply", "-c", CONFIG]);
    assert.notEqual(again.code, 0, again.stdout);
    assert.match(again.stderr, /cannot list IPv4 table mangle/);
    assert.match(again.stderr, /nft list table ip mangle/);
    assert.equal(jumps(), before, "no second copy of the jump");
  },
);

test(
  "a jump listed twice (iptables keeps duplicates) is brought back to one copy by the next apply",
  { skip },
  (t) => {
    const node = createNode(t);
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr);
    const preJumps = (): string[] =>
      node
        .exec(["iptables-save", "-t", "mangle"])
        .stdout.split("\n")
        .filter((l) => l.startsWith("-A PREROUTING") && l.endsWith("-j SYMROUTE-PRE"));
    const [jump] = preJumps();
    const comment = / --comment "([^"]+)"/.exec(jump ?? "")?.[1];
    assert.ok(comment !== undefined, `symroute's jump from PREROUTING: ${jump ?? "none"}`);
    node.exec([
      "iptables",
      "-t",
      "mangle",
      "-I",
      "PREROUTING",
      "1",
      "-m",
      "comment",
      "--comment",
      comment,
      "-j",
      "SYMROUTE-PRE",
    ]);
    assert.equal(preJumps().length, 2);

    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 2, "the second copy is a pending change");
    const again = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(preJumps().length, 1);
    const plan = node.symroute(["plan", "-c", CONFIG]);
    assert.equal(plan.code, 0, plan.stdout);
  },
);
