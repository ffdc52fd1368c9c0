// The text and JSON reports of a plan, byte for byte, on a recorded report with every kind of
// change (rendered in a batch or described one by one), networks with and without table or mark,
// conflicts and warnings. The expected outputs were made before the formatters were rewritten for
// speed.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { formatPayloadsText, formatPlanText, planToJson } from "../../src/cli/commands/core.ts";
import { describeChange, describeChanges, type PlanReport } from "../../src/engine/engine.ts";

const read = (name: string): string => readFileSync(new URL(`fixtures/${name}`, import.meta.url), "utf8");
const report = JSON.parse(read("plan-report.json")) as PlanReport;
// Colours depend on the terminal (and FORCE_COLOR): the recorded text has none.
const plain = (text: string): string => text.replace(/\x1b\[[0-9;]*m/g, "");

test("the text report is the recorded one", () => {
  const text = plain(formatPlanText(report, "symroute plan")) + plain(formatPayloadsText(report));
  assert.equal(text, read("plan-report-expected.txt"));
});

test("the JSON report and the change descriptions are the recorded ones", () => {
  const json = JSON.stringify(
    {
      plan: planToJson(report, { payloads: false }),
      withPayloads: planToJson(report, { payloads: true }),
      described: describeChanges(report.changes, report.payloads),
      one: report.changes.map(describeChange),
    },
    null,
    1,
  );
  assert.equal(`${json}\n`, read("plan-report-expected.json"));
});

test("a report in sync says so", () => {
  const inSync = { ...report, changes: [], conflicts: [], warnings: [] };
  assert.match(plain(formatPlanText(inSync, "symroute plan")), /\nIn sync: nothing to change\.\n$/);
});

test("a delete with nothing of symroute's on the node says there is nothing to delete", () => {
  const nothing = { ...report, networks: [], changes: [], conflicts: [], warnings: [] };
  const text = plain(formatPlanText(nothing, "symroute delete", { removing: true }));
  assert.match(text, /\nNothing to delete: symroute owns nothing on this node\.\n$/);
  assert.doesNotMatch(text, /In sync/);
});

test("counts agree with their nouns: no 'change(s)', no '(1 rules)'", () => {
  const one = { ...report, changes: report.changes.filter((c) => c.kind === "firewall").slice(0, 1) };
  const firewall = one.changes[0];
  assert.ok(firewall !== undefined && firewall.kind === "firewall");
  const single = { ...one, changes: [{ ...firewall, rules: 1 }] };
  const text = plain(formatPlanText(single as PlanReport, "symroute plan"));
  assert.match(text, /\n1 change:\n/);
  assert.match(text, /\(1 rule\)/);
  for (const shown of [text, plain(formatPlanText(report, "symroute plan"))]) {
    assert.doesNotMatch(shown, /\(s\)/);
    assert.doesNotMatch(shown, /\b1 (rules|changes|interfaces|elements)\b/);
  }
});
