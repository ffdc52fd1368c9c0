// symroute's fwmark rules in groups on the real kernel (issue 15): from 64 in a family, each group
// of 32 marks sits behind one goto, so a reply symroute routes tries the gotos before its group's
// and its group's rules, not every network's rule. The kernel binds every goto (none unresolved),
// each network's mark gets its table, a packet without a mark gets main, and a marked packet is
// taken past the groups before its own (a canary rule there is never reached; with one list it is).
// Going back under 64 returns one list; delete returns the namespace byte for byte.

import { test } from "node:test";
import assert from "node:assert/strict";
import { configDir, createNode, e2eUnavailable, writeConfigFile, type Netns } from "../support/netns.ts";
import { gatewayNetworks, misrouted, routeGet } from "../support/rule-groups.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-groups-");

function mustIn(node: Netns, argv: readonly string[], input?: string): string {
  const r = node.exec(argv, input);
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `${firewall}: 70 networks' fwmark rules go in 3 groups behind gotos, and back to one list at 63`,
    { skip },
    (t) => {
      const node = createNode(t);
      const many = writeConfigFile(dir, `many-${firewall}.yaml`, gatewayNetworks(firewall, 70));
      const few = writeConfigFile(dir, `few-${firewall}.yaml`, gatewayNetworks(firewall, 63));
      const start = node.dump();
      const applied = node.symroute(["apply", "-c", many]);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      assert.match(
        applied.stdout,
        /rule skip IPv4: priority 1000 goto 1009 over the 70 fwmark rules, in 3 groups at 1006-1008 behind gotos at 1001/,
      );
      const rules = mustIn(node, ["ip", "-4", "rule"]);
      assert.doesNotMatch(rules, /unresolved/, rules);
      assert.match(rules, /^1000:\tfrom all fwmark 0\/0xff goto 1009 proto 201$/m, rules);
      assert.match(rules, /^1001:\tfrom all fwmark 0x40\/0xe0 goto 1008 proto 201$/m, rules);
      assert.match(rules, /^1008:\tfrom all fwmark 0x46\/0xff lookup 20069 proto 201$/m, rules);
      assert.match(rules, /^1009:\tfrom all nop proto 201$/m, rules);
      for (let i = 0; i < 70; i++)
        assert.match(
          routeGet(node, "198.51.100.7", i + 1),
          new RegExp(`via 10\\.${i}\\.3\\.1 dev ext0 table ${20000 + i}`),
        );
      assert.match(routeGet(node, "198.51.100.7"), /via 192\.168\.1\.1 dev eth0/);
      // A canary in group 0's priority, after its rules: a mark of group 2 that no network holds
      // jumps past it to group 2, finds no rule and gets main (the restore gives no packet such a
      // mark: its map holds the values networks hold now; this checks the gotos, not a real flow).
      mustIn(node, ["ip", "route", "add", "blackhole", "198.51.100.0/24", "table", "77"]);
      mustIn(node, ["ip", "rule", "add", "priority", "1006", "to", "198.51.100.0/24", "lookup", "77"]);
      assert.match(routeGet(node, "198.51.100.7", 0x50), /via 192\.168\.1\.1 dev eth0/);
      mustIn(node, ["ip", "rule", "del", "priority", "1006", "to", "198.51.100.0/24", "lookup", "77"]);

      // Down to 63: one list at 1001 again, the gotos and the groups' nop gone.
      const back = node.symroute(["apply", "-c", few]);
      assert.equal(back.code, 0, back.stdout + back.stderr);
      const flat = mustIn(node, ["ip", "-4", "rule"]);
      assert.match(flat, /^1000:\tfrom all fwmark 0\/0xff goto 1002 proto 201$/m, flat);
      assert.doesNotMatch(flat, /^100[3-9]:/m, flat);
      assert.equal((flat.match(/^1001:\tfrom all fwmark 0x[0-9a-f]+\/0xff lookup/gm) ?? []).length, 63, flat);
      // The same canary after one list: a mark no network holds walks the list and meets it.
      mustIn(node, ["ip", "rule", "add", "priority", "1006", "to", "198.51.100.0/24", "lookup", "77"]);
      assert.match(routeGet(node, "198.51.100.7", 0x50), /error: .*Invalid argument/);
      mustIn(node, ["ip", "rule", "del", "priority", "1006", "to", "198.51.100.0/24", "lookup", "77"]);
      mustIn(node, ["ip", "route", "flush", "table", "77"]);

      assert.equal(node.symroute(["apply", "-c", many]).code, 0);
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(node.dump(), start);
    },
  );
}

/** The lines of the `# ip -batch -` payload that `apply --dry-run` prints (IPv4's). */
function ipBatchOf(dryRun: string): string[] {
  const lines: string[] = [];
  let inBatch = false;
  for (const line of dryRun.split("\n")) {
    if (line.startsWith("# ")) inBatch = line === "# ip -batch -";
    else if (inBatch && line.trim() !== "") lines.push(line);
  }
  return lines;
}

test(
  "a node laid out by the release before the groups (70 fwmark rules in one list at 1001): one apply moves them into the groups, every mark routed by its table after each line of its batch",
  { skip },
  (t) => {
    const node = createNode(t);
    const config = writeConfigFile(dir, "upgrade.yaml", gatewayNetworks("nftables", 70));
    const start = node.dump();
    assert.equal(node.symroute(["apply", "-c", config]).code, 0);
    // The earlier release's rules for the same networks: the skip to the nop at 1002 and every
    // fwmark rule at 1001 (its firewall, tables and state file are the same as this one's).
    const layOutAsBefore = (): void => {
      // `ip rule show proto 201` lists every rule: the protocol is picked out here.
      const now = (
        JSON.parse(mustIn(node, ["ip", "-4", "-j", "rule", "show"])) as {
          priority: number;
          protocol?: string;
        }[]
      ).filter((r) => r.protocol === "201");
      const lines = [
        ...now.map((r) => `rule del priority ${r.priority} proto 201`),
        "rule add priority 1002 nop proto 201",
        "rule add priority 1000 fwmark 0x0/0xff goto 1002 proto 201",
        ...Array.from(
          { length: 70 },
          (_, i) =>
            `rule add priority 1001 fwmark 0x${(i + 1).toString(16)}/0xff lookup ${20000 + i} proto 201`,
        ),
      ];
      mustIn(node, ["ip", "-4", "-batch", "-"], `${lines.join("\n")}\n`);
      assert.doesNotMatch(mustIn(node, ["ip", "-4", "rule"]), /goto 10(0[3-9]|1)/);
    };
    layOutAsBefore();
    assert.deepEqual(misrouted(node, 70), []);
    assert.equal(node.symroute(["plan", "-c", config]).code, 2);

    // The apply's batch, a line at a time: no moment in which a network's replies leave by main.
    const dry = node.symroute(["apply", "--dry-run", "-c", config]);
    assert.equal(dry.code, 0, dry.stderr);
    const batch = ipBatchOf(dry.stdout);
    assert.ok(batch.length > 70, dry.stdout);
    for (const line of batch) {
      mustIn(node, ["ip", "-4", "-batch", "-"], `${line}\n`);
      assert.deepEqual(misrouted(node, 70), [], `after ${line}`);
    }
    // The real apply from the earlier layout again (the batch replayed left the groups in place).
    layOutAsBefore();
    const applied = node.symroute(["apply", "-c", config]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal(node.symroute(["plan", "-c", config]).code, 0);
    assert.match(mustIn(node, ["ip", "-4", "rule"]), /^1001:\tfrom all fwmark 0\/0xe0 goto 1006 proto 201$/m);
    assert.deepEqual(misrouted(node, 70), []);
    assert.equal(node.symroute(["delete"]).code, 0);
    assert.equal(node.dump(), start);
  },
);

test(
  "another tool's rule where the groups would go (1007): one list stays, the rule still sees every packet without a mark, apply exits 0",
  { skip },
  (t) => {
    const node = createNode(t);
    const config = writeConfigFile(dir, "foreign.yaml", gatewayNetworks("nftables", 70));
    mustIn(node, ["ip", "route", "add", "blackhole", "203.0.113.0/24", "table", "77"]);
    mustIn(node, ["ip", "rule", "add", "priority", "1007", "to", "203.0.113.0/24", "lookup", "77"]);
    const start = node.dump();
    const applied = node.symroute(["apply", "-c", config]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.match(
      applied.stdout,
      /rule skip IPv4: priority 1000 goto 1002 over the 70 fwmark rules\n.*no groups of fwmark rules: rule priority 1007 lookup 77 is not symroute's/,
    );
    // Its blackhole answers a packet without a mark, as before symroute; every mark its table.
    assert.match(routeGet(node, "203.0.113.7"), /error: .*Invalid argument/);
    assert.deepEqual(misrouted(node, 70), []);
    assert.equal(node.symroute(["plan", "-c", config]).code, 0);
    // Once it is gone, the groups; delete leaves the other tool's rule where it was.
    mustIn(node, ["ip", "rule", "del", "priority", "1007", "to", "203.0.113.0/24", "lookup", "77"]);
    assert.equal(node.symroute(["apply", "-c", config]).code, 0);
    assert.match(mustIn(node, ["ip", "-4", "rule"]), /^1000:\tfrom all fwmark 0\/0xff goto 1009 proto 201$/m);
    mustIn(node, ["ip", "rule", "add", "priority", "1007", "to", "203.0.113.0/24", "lookup", "77"]);
    const back = node.symroute(["apply", "-c", config]);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    assert.match(routeGet(node, "203.0.113.7"), /error: .*Invalid argument/);
    assert.equal(node.symroute(["delete"]).code, 0);
    assert.equal(node.dump(), start);
  },
);
