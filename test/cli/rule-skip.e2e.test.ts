// The skip rule over symroute's fwmark rules on the real kernel (issue 15): the kernel's route
// lookup takes a packet without a mark past them (a canary rule between the skip and its nop is
// never reached, and plan calls it a conflict), a marked packet still gets its network's table, in
// both families; delete returns the namespace byte for byte.

import { test } from "node:test";
import assert from "node:assert/strict";
import { configDir, createNode, e2eUnavailable, writeConfigFile, type Netns } from "../support/netns.ts";
import { routeGet } from "../support/rule-groups.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-skip-");

/** Three networks with their own gateways on ext0, each in both families. */
const networks = (firewall: string): string => `firewall: ${firewall}
networks:
  - { name: red, addresses: [1.2.3.0/24, "2001:db8:100::/64"], interface: ext0, gateway: [1.2.3.1, "2001:db8:100::1"] }
  - { name: blue, addresses: [5.6.7.0/24, "2001:db8:200::/64"], interface: ext0, gateway: [5.6.7.1, "2001:db8:200::1"] }
  - { name: green, addresses: [9.9.9.0/24, "2001:db8:300::/64"], interface: ext0, gateway: [9.9.9.1, "2001:db8:300::1"] }
`;

function mustIn(node: Netns, argv: readonly string[]): string {
  const r = node.exec(argv);
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `${firewall}: an unmarked packet skips the fwmark rules, a marked one gets its table; delete restores the dump`,
    { skip },
    (t) => {
      const node = createNode(t, { dualStack: true });
      const cfg = writeConfigFile(dir, `three-${firewall}.yaml`, networks(firewall));
      const start = node.dump();
      const applied = node.symroute(["apply", "-c", cfg]);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      assert.match(applied.stdout, /rule skip IPv4: priority 1000 goto 1002 over the 3 fwmark rules/);
      for (const family of [4, 6] as const) {
        const rules = mustIn(node, ["ip", `-${family}`, "rule"]);
        assert.match(rules, /^1000:\tfrom all fwmark 0\/0xff goto 1002 proto 201$/m, rules);
        assert.match(rules, /^1002:\tfrom all nop proto 201$/m, rules);
        assert.doesNotMatch(rules, /unresolved/);
      }

      // A canary between the skip and the nop: every packet that reaches it is refused.
      mustIn(node, ["ip", "route", "add", "blackhole", "198.51.100.0/24", "table", "77"]);
      mustIn(node, ["ip", "rule", "add", "priority", "1001", "to", "198.51.100.0/24", "lookup", "77"]);
      mustIn(node, ["ip", "-6", "route", "add", "blackhole", "2001:db8:ffff::/48", "table", "77"]);
      mustIn(node, [
        "ip",
        "-6",
        "rule",
        "add",
        "priority",
        "1001",
        "to",
        "2001:db8:ffff::/48",
        "lookup",
        "77",
      ]);
      // Unmarked (and marked with bits that are not symroute's): main's default route, canary jumped.
      assert.match(routeGet(node, "198.51.100.7"), /via 192\.168\.1\.1 dev eth0/);
      assert.match(routeGet(node, "198.51.100.7", 0x4000), /via 192\.168\.1\.1 dev eth0/);
      assert.match(routeGet(node, "2001:db8:ffff::7"), /via 2001:db8:1::1 dev eth0/);
      // Marked: the network's table, through its fwmark rule (tried before the canary added after it).
      assert.match(routeGet(node, "198.51.100.7", 0x2), /via 5\.6\.7\.1 dev ext0 table 20001/);
      assert.match(routeGet(node, "2001:db8:ffff::7", 0x3), /via 2001:db8:300::1 dev ext0 table 20002/);
      // The canary is what a marked packet without a network of its own meets: it is really there.
      assert.match(routeGet(node, "198.51.100.7", 0x7), /error: .*Invalid argument/);
      assert.match(routeGet(node, "2001:db8:ffff::7", 0x7), /error: .*Invalid argument/);

      const plan = node.symroute(["plan", "-c", cfg]);
      assert.equal(plan.code, 4, plan.stdout + plan.stderr);
      assert.match(
        plan.stdout,
        /conflict: IPv4 rule priority 1001 to 198\.51\.100\.0\/24 lookup 77: not symroute's, and between symroute's skip rule priority 1000 fwmark 0x0\/0xff goto 1002 .*jump over it/,
      );
      // doctor names it too, with the command that removes it (before, it said nothing of it).
      const doctor = node.symroute(["doctor", "-c", cfg, "-o", "json"]);
      assert.equal(doctor.code, 3, doctor.stdout + doctor.stderr);
      const conflicts = (
        JSON.parse(doctor.stdout) as {
          findings: { path: string; ok: boolean; summary: string; cause?: string }[];
        }
      ).findings.filter((f) => f.path === "conflict");
      assert.equal(conflicts.length, 2, doctor.stdout);
      assert.ok(conflicts.every((f) => !f.ok));
      assert.match(conflicts[0]?.summary ?? "", /IPv4 rule priority 1001 to 198\.51\.100\.0\/24 lookup 77/);
      assert.match(conflicts[0]?.cause ?? "", /ip rule del priority 1001 to 198\.51\.100\.0\/24 lookup 77/);

      mustIn(node, ["ip", "rule", "del", "priority", "1001", "to", "198.51.100.0/24", "lookup", "77"]);
      mustIn(node, [
        "ip",
        "-6",
        "rule",
        "del",
        "priority",
        "1001",
        "to",
        "2001:db8:ffff::/48",
        "lookup",
        "77",
      ]);
      mustIn(node, ["ip", "route", "flush", "table", "77"]);
      mustIn(node, ["ip", "-6", "route", "flush", "table", "77"]);
      assert.equal(node.symroute(["plan", "-c", cfg]).code, 0);
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(node.dump(), start);
    },
  );
}
