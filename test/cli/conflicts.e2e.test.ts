// Conflicts are conflicts (issue 17 item 2): a foreign route that appears in the table symroute
// allocated, or a foreign rule in its priority band that the kernel tries before symroute's, is
// reported as a conflict (plan and apply exit 4, the object named) and symroute keeps its table and
// priorities: it never moves away from the operator's object.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createNode,
  e2eUnavailable,
  type Netns,
  configDir,
  writeConfigFile,
  PUBLIC_NETWORK,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-conflicts-");
const CONFIG = writeConfigFile(dir, "public.yaml", PUBLIC_NETWORK);

interface RuleJson {
  priority: number;
  src?: string;
  fwmark?: string;
  table?: string;
  protocol?: string;
}
const rules = (node: Netns): RuleJson[] => JSON.parse(node.exec(["ip", "-j", "rule"]).stdout) as RuleJson[];
/** The command a conflict's reason says removes the foreign object, as argv. */
const printedFix = (reason: string): string[] => {
  const command = /remove it \((ip [^)]*)\)/.exec(reason)?.[1];
  assert.ok(command !== undefined, reason);
  return command.split(" ");
};
const mustIn = (node: Netns, argv: readonly string[]): string => {
  const r = node.exec(argv);
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

test("a foreign route in symroute's table is a conflict; symroute keeps the table", { skip }, (t) => {
  const node = createNode(t);
  assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
  assert.ok(rules(node).some((r) => r.fwmark === "0x1" && r.table === "20000"));
  // The operator adds a route to the network's table.
  mustIn(node, ["ip", "route", "add", "9.9.9.0/24", "dev", "ext0", "table", "20000"]);

  const plan = node.symroute(["plan", "-c", CONFIG, "-o", "json"]);
  assert.equal(plan.code, 4, plan.stdout + plan.stderr);
  const report = JSON.parse(plan.stdout) as {
    changes: unknown[];
    conflicts: { object: string; reason: string }[];
    networks: { table: number }[];
  };
  assert.deepEqual(report.changes, [], "nothing moves");
  assert.equal(report.networks[0]?.table, 20000);
  assert.equal(report.conflicts.length, 1, JSON.stringify(report.conflicts));
  assert.match(report.conflicts[0]?.object ?? "", /route 9\.9\.9\.0\/24 dev ext0 table 20000/);
  assert.match(
    report.conflicts[0]?.reason ?? "",
    /which symroute allocated for its replies; remove it \(ip route del 9\.9\.9\.0\/24 dev ext0 table 20000 proto 3\).*table: of your own/,
  );

  const applied = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(applied.code, 4, applied.stdout + applied.stderr);
  assert.match(applied.stdout, /conflict: IPv4 route 9\.9\.9\.0\/24 dev ext0 table 20000/);
  assert.match(applied.stdout, /Not converged: 1 conflict/);
  // symroute's rule still chooses table 20000 and the operator's route is still there, untouched.
  assert.ok(rules(node).some((r) => r.fwmark === "0x1" && r.table === "20000"));
  assert.ok(!rules(node).some((r) => r.table === "20001"));
  assert.match(mustIn(node, ["ip", "route", "show", "table", "20000"]), /9\.9\.9\.0\/24 dev ext0/);

  // Removed by the operator with the command the conflict names: in sync again, exit 0.
  mustIn(node, printedFix(report.conflicts[0]?.reason ?? ""));
  assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
  assert.ok(rules(node).some((r) => r.fwmark === "0x1" && r.table === "20000"));
});

test(
  "a foreign rule in the band that the kernel tries first is a conflict, removed by the printed fix alone",
  { skip },
  (t) => {
    const node = createNode(t);
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    // `ip route get ... iif` needs forwarding; table 100 routes replies by the node's own gateway.
    mustIn(node, ["sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"]);
    mustIn(node, ["ip", "route", "add", "default", "via", "192.168.1.1", "table", "100"]);
    const replyRoute = (): string =>
      mustIn(node, ["ip", "route", "get", "203.0.113.10", "from", "1.2.3.4", "mark", "0x1", "iif", "ext0"]);
    assert.match(replyRoute(), /via 1\.2\.3\.1 dev ext0 table 20000/);

    // Before symroute's rule: the kernel tries it first and the reply leaves by the wrong gateway.
    mustIn(node, ["ip", "rule", "add", "priority", "1000", "from", "1.2.3.0/24", "lookup", "100"]);
    assert.match(replyRoute(), /via 192\.168\.1\.1 dev eth0 table 100/);
    const plan = node.symroute(["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(plan.code, 4, plan.stdout + plan.stderr);
    const [conflict, ...others] = (
      JSON.parse(plan.stdout) as { conflicts: { object: string; reason: string }[] }
    ).conflicts;
    assert.deepEqual(others, []);
    assert.equal(conflict?.object, "IPv4 rule priority 1000 from 1.2.3.0/24 lookup 100");
    assert.match(
      conflict.reason,
      /tries it before symroute's rule priority 1001 fwmark 0x1\/0xff lookup 20000/,
    );
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 4, applied.stdout + applied.stderr);
    assert.doesNotMatch(applied.stdout, /Applied and verified/);

    // The printed fix removes that rule and nothing of symroute's.
    mustIn(node, printedFix(conflict.reason));
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
    assert.match(replyRoute(), /via 1\.2\.3\.1 dev ext0 table 20000/);

    // At symroute's own priority but listed after its rule (added later): the kernel tries symroute's
    // first, so the reply is unchanged and it is a notice, not a conflict.
    mustIn(node, ["ip", "rule", "add", "priority", "1001", "from", "1.2.3.0/24", "lookup", "100"]);
    assert.match(replyRoute(), /via 1\.2\.3\.1 dev ext0 table 20000/);
    const after = node.symroute(["plan", "-c", CONFIG]);
    assert.equal(after.code, 0, after.stdout);
    assert.match(after.stdout, /warning: IPv4 rule priority 1001 lookup 100 is not symroute's/);
    mustIn(node, ["ip", "rule", "del", "priority", "1001", "from", "1.2.3.0/24", "lookup", "100"]);

    // Listed before symroute's rule at its priority (symroute's made again after it): a conflict, and
    // its fix names the foreign rule whole; `ip rule del priority 1001` alone would take the first
    // rule at 1001, whichever it is.
    assert.equal(node.symroute(["delete"]).code, 0);
    mustIn(node, ["ip", "rule", "add", "priority", "1001", "from", "1.2.3.0/24", "lookup", "100"]);
    const again = node.symroute(["apply", "-c", CONFIG, "-o", "json"]);
    assert.equal(again.code, 4, again.stdout + again.stderr);
    const first =
      (JSON.parse(again.stdout) as { conflicts: { reason: string }[] }).conflicts[0]?.reason ?? "";
    assert.match(first, /remove it \(ip rule del priority 1001 from 1\.2\.3\.0\/24 lookup 100\)/);
    mustIn(node, printedFix(first));
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
    assert.ok(rules(node).some((r) => r.fwmark === "0x1" && r.table === "20000"));

    // A foreign rule that cannot match symroute's packets (another mark, later priority) is a notice.
    mustIn(node, ["ip", "rule", "add", "priority", "1500", "fwmark", "0x4000/0x4000", "lookup", "77"]);
    const notice = node.symroute(["plan", "-c", CONFIG]);
    assert.equal(notice.code, 0, notice.stdout);
    assert.match(notice.stdout, /warning: IPv4 rule priority 1500 lookup 77 is not symroute's/);
  },
);
