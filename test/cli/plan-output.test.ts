// The text and JSON reports of a plan, byte for byte, on a recorded report with every kind of
// change (rendered in a batch or described one by one), networks with and without table or mark,
// conflicts and warnings. The expected outputs were made before the formatters were rewritten for
// speed.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  formatApplyText,
  formatPayloadsText,
  formatPlanText,
  planToJson,
} from "../../src/cli/commands/core.ts";
import {
  describeChange,
  describeChanges,
  type ApplyReport,
  type PlanReport,
} from "../../src/engine/engine.ts";

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

test("an apply that finds the node converged says so once", () => {
  const converged: ApplyReport = { ...report, changes: [], conflicts: [], warnings: [], applied: false };
  const text = plain(formatApplyText(converged));
  assert.match(text, /\nNothing to do: the node was already converged\.\n$/);
  assert.doesNotMatch(text, /In sync/);
});

test("an apply blocked only by conflicts does not say it is in sync", () => {
  const conflict = { object: "ip rule priority 1001", reason: "a foreign rule holds it" };
  const blocked: ApplyReport = {
    ...report,
    changes: [],
    conflicts: [conflict],
    warnings: [],
    applied: false,
  };
  const text = plain(formatApplyText(blocked));
  assert.match(text, /\nconflict: ip rule priority 1001: a foreign rule holds it\nNot converged: 1 conflict/);
  assert.doesNotMatch(text, /In sync|Nothing to do/);
});

test("an apply that changed the node lists the changes, then says it applied them", () => {
  const applied: ApplyReport = { ...report, conflicts: [], warnings: [], applied: true };
  const text = plain(formatApplyText(applied));
  assert.match(text, new RegExp(`\\n${report.changes.length} changes:\\n`));
  assert.match(
    text,
    new RegExp(
      `\\nApplied and verified: ${report.changes.length} changes; symroute owns \\d+ objects?\\.\\n$`,
    ),
  );
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
