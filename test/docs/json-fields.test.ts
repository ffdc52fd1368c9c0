// README's list of `plan -o json` / `apply -o json` fields names every field the CLI prints (a
// field added to planToJson without its line in README fails here; the fields are a contract).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { planToJson } from "../../src/cli/commands/core.ts";
import type { ApplyReport } from "../../src/engine/engine.ts";
import { traceToJson } from "../../src/cli/commands/explain.ts";
import type { Trace } from "../../src/simulate/types.ts";
import { tableAfter } from "../support/markdown-table.ts";

test("README lists every top-level field of plan/apply -o json", () => {
  const recorded = JSON.parse(
    readFileSync(new URL("../cli/fixtures/plan-report.json", import.meta.url), "utf8"),
  ) as ApplyReport;
  // The fields printed only sometimes, present: an apply's, a mark move's, the state file's.
  const report = {
    ...recorded,
    applied: true,
    markMoves: { mask: 0xff, oldMask: 0xffff, moves: [] },
    state: { file: "/var/lib/symroute/netns-1-2/state.json", found: true },
  } as unknown as ApplyReport;
  const fields = Object.keys(planToJson(report, { payloads: true }));
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("`plan -o json` / `apply -o json` fields:");
  assert.ok(start >= 0, "README's list of -o json fields");
  const listed = readme.slice(start, readme.indexOf("\n\n", start));
  for (const field of fields)
    assert.ok(
      listed.includes(`\`${field}\``) || listed.includes(`\`${field}[]\``),
      `README's -o json fields miss ${field}`,
    );
});

test("docs/explain.md's table of explain -o json fields names every field explain prints", () => {
  const page = readFileSync(new URL("../../docs/explain.md", import.meta.url), "utf8");
  // The keys do not depend on the trace: absent ones are null. dnat and notes the command adds.
  const fields = [
    ...Object.keys(traceToJson({ result: "unicast", family: 4 } as unknown as Trace)),
    "dnat",
    "notes",
  ];
  const cells = tableAfter(page, "## JSON output (`-o json`)", "docs/explain.md").map((row) => row[0] ?? "");
  for (const field of fields)
    assert.ok(
      cells.some((cell) => cell.includes(`\`${field}\``)),
      `docs/explain.md's JSON table misses ${field}`,
    );
});
