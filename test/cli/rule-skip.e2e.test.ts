// The skip rule over symroute's fwmark rules on the real kernel (issue 15): the kernel's route
// lookup takes a packet without a mark past them, a marked packet still gets its network's table,
// in both families; a foreign rule between the skip and its nop makes symroute leave the skip out
// (that rule then sees the packets it matches again); delete returns the namespace byte for byte.

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
      const canary = (action: "add" | "del"): void => {
        mustIn(node, ["ip", "rule", action, "priority", "1001", "to", "198.51.100.0/24", "lookup", "77"]);
        mustIn(node, [
          "ip",
          "-6",
          "rule",
          action,
          "priority",
          "1001",
          "to",
          "2001:db8:ffff::/48",
          "lookup",
          "77",
        ]);
      };
      mustIn(node, ["ip", "route", "add", "blackhole", "198.51.100.0/24", "table", "77"]);
      mustIn(node, ["ip", "-6", "route", "add", "blackhole", "2001:db8:ffff::/48", "table", "77"]);
      canary("add");
      // Unmarked (and marked with bits that are not symroute's): the skip takes them past the canary.
      assert.match(routeGet(node, "198.51.100.7"), /via 192\.168\.1\.1 dev eth0/);
      assert.match(routeGet(node, "198.51.100.7", 0x4000), /via 192\.168\.1\.1 dev eth0/);
      assert.match(routeGet(node, "2001:db8:ffff::7"), /via 2001:db8:1::1 dev eth0/);
      // Marked: the network's table, through its fwmark rule (tried before the canary added after it).
      assert.match(routeGet(node, "198.51.100.7", 0x2), /via 5\.6\.7\.1 dev ext0 table 20001/);
      assert.match(routeGet(node, "2001:db8:ffff::7", 0x3), /via 2001:db8:300::1 dev ext0 table 20002/);
      // The canary is what a marked packet without a network of its own meets: it is really there.
      assert.match(routeGet(node, "198.51.100.7", 0x7), /error: .*Invalid argument/);
      assert.match(routeGet(node, "2001:db8:ffff::7", 0x7), /error: .*Invalid argument/);

      // symroute yields: the skip goes while another tool's rule sits where it would jump.
      const plan = node.symroute(["plan", "-c", cfg]);
      assert.equal(plan.code, 2, plan.stdout + plan.stderr);
      assert.match(
        plan.stdout,
        /no skip rule: rule priority 1001 to 198\.51\.100\.0\/24 lookup 77 is not symroute's and sits between the skip's priority 1000 and its nop 1002/,
      );
      const yielded = node.symroute(["apply", "-c", cfg]);
      assert.equal(yielded.code, 0, yielded.stdout + yielded.stderr);
      for (const family of [4, 6] as const)
        assert.doesNotMatch(mustIn(node, ["ip", `-${family}`, "rule"]), /goto 1002/);
      assert.match(routeGet(node, "198.51.100.7"), /error: .*Invalid argument/);
      assert.match(routeGet(node, "2001:db8:ffff::7"), /error: .*Invalid argument/);
      assert.match(routeGet(node, "198.51.100.7", 0x2), /via 5\.6\.7\.1 dev ext0 table 20001/);
      assert.equal(node.symroute(["plan", "-c", cfg]).code, 0);

      // A foreign route in a table symroute allocated is a conflict: doctor names it, with the
      // command that removes it.
      mustIn(node, ["ip", "route", "add", "198.18.0.0/24", "dev", "ext0", "table", "20000"]);
      const doctor = node.symroute(["doctor", "-c", cfg, "-o", "json"]);
      assert.equal(doctor.code, 3, doctor.stdout + doctor.stderr);
      const conflicts = (
        JSON.parse(doctor.stdout) as {
          findings: { path: string; ok: boolean; summary: string; cause?: string }[];
        }
      ).findings.filter((f) => f.path === "conflict");
      assert.equal(conflicts.length, 1, doctor.stdout);
      assert.ok(conflicts.every((f) => !f.ok));
      assert.match(conflicts[0]?.summary ?? "", /198\.18\.0\.0\/24/);
      assert.match(conflicts[0]?.cause ?? "", /ip route del 198\.18\.0\.0\/24/);
      mustIn(node, ["ip", "route", "del", "198.18.0.0/24", "dev", "ext0", "table", "20000"]);

      // The canary gone, the skip comes back.
      canary("del");
      mustIn(node, ["ip", "route", "flush", "table", "77"]);
      mustIn(node, ["ip", "-6", "route", "flush", "table", "77"]);
      assert.equal(node.symroute(["plan", "-c", cfg]).code, 2);
      assert.equal(node.symroute(["apply", "-c", cfg]).code, 0);
      assert.match(
        mustIn(node, ["ip", "-4", "rule"]),
        /^1000:\tfrom all fwmark 0\/0xff goto 1002 proto 201$/m,
      );
      assert.equal(node.symroute(["plan", "-c", cfg]).code, 0);
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(node.dump(), start);
    },
  );
}

test(
  "a foreign rule already between the skip's priority and its nop: apply leaves the skip out, and unmarked packets still reach that rule",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    const cfg = writeConfigFile(dir, "three-foreign-first.yaml", networks("nftables"));
    mustIn(node, ["ip", "route", "add", "blackhole", "198.51.100.0/24", "table", "77"]);
    mustIn(node, ["ip", "rule", "add", "priority", "1001", "to", "198.51.100.0/24", "lookup", "77"]);
    assert.match(routeGet(node, "198.51.100.7"), /error: .*Invalid argument/);
    const start = node.dump();
    const applied = node.symroute(["apply", "-c", cfg]);
    // Other conflicts of that rule (it comes before symroute's fwmark rules) may be reported; the
    // skip, which would take every unmarked packet past it, is not laid over it.
    assert.ok([0, 4].includes(applied.code ?? -1), applied.stdout + applied.stderr);
    assert.match(
      applied.stdout,
      /no skip rule: rule priority 1001 to 198\.51\.100\.0\/24 lookup 77 is not symroute's/,
    );
    assert.doesNotMatch(mustIn(node, ["ip", "-4", "rule"]), /goto 1002/);
    assert.match(routeGet(node, "198.51.100.7"), /error: .*Invalid argument/);
    // IPv6 has no such rule: its skip is there.
    assert.match(mustIn(node, ["ip", "-6", "rule"]), /^1000:\tfrom all fwmark 0\/0xff goto 1002 proto 201$/m);
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(node.dump(), start);
  },
);
