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
    /which symroute allocated .*route del 9\.9\.9\.0\/24 table 20000.*table: of your own/,
  );

  const applied = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(applied.code, 4, applied.stdout + applied.stderr);
  assert.match(applied.stdout, /conflict: IPv4 route 9\.9\.9\.0\/24 dev ext0 table 20000/);
  assert.match(applied.stdout, /Not converged: 1 conflict/);
  // symroute's rule still chooses table 20000 and the operator's route is still there, untouched.
  assert.ok(rules(node).some((r) => r.fwmark === "0x1" && r.table === "20000"));
  assert.ok(!rules(node).some((r) => r.table === "20001"));
  assert.match(mustIn(node, ["ip", "route", "show", "table", "20000"]), /9\.9\.9\.0\/24 dev ext0/);

  // Removed by the operator: in sync again, exit 0.
  mustIn(node, ["ip", "route", "del", "9.9.9.0/24", "table", "20000"]);
  assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
});

test("a foreign rule in the band that the kernel tries first is a conflict", { skip }, (t) => {
  const node = createNode(t);
  assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
  mustIn(node, ["ip", "rule", "add", "priority", "1001", "from", "1.2.3.0/24", "lookup", "100"]);

  const plan = node.symroute(["plan", "-c", CONFIG]);
  assert.equal(plan.code, 4, plan.stdout + plan.stderr);
  assert.match(
    plan.stdout,
    /conflict: IPv4 rule priority 1001 from 1\.2\.3\.0\/24 lookup 100: .*tries it before symroute's rule priority 1001 fwmark 0x1\/0xff lookup 20000/,
  );
  const applied = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(applied.code, 4, applied.stdout + applied.stderr);
  assert.doesNotMatch(applied.stdout, /Applied and verified/);
  // Where the kernel sends a reply from the pool now: table 100 (empty) first, never table 20000's
  // gateway; this is what the conflict is about.
  const lookup = node.exec([
    "ip",
    "route",
    "get",
    "203.0.113.10",
    "from",
    "1.2.3.4",
    "mark",
    "0x1",
    "iif",
    "ext0",
  ]);
  assert.doesNotMatch(lookup.stdout, /via 1\.2\.3\.1/);

  // A foreign rule that cannot match symroute's packets (another mark, later priority) is a notice.
  mustIn(node, ["ip", "rule", "del", "priority", "1001", "from", "1.2.3.0/24", "lookup", "100"]);
  mustIn(node, ["ip", "rule", "add", "priority", "1500", "fwmark", "0x4000/0x4000", "lookup", "77"]);
  const notice = node.symroute(["plan", "-c", CONFIG]);
  assert.equal(notice.code, 0, notice.stdout);
  assert.match(notice.stdout, /warning: IPv4 rule priority 1500 lookup 77 is not symroute's/);
});
