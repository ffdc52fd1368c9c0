// Generated pages are current: docs/benchmarks.md is what bench/results/ give, docs/reliability.md
// what docs/results/ give. A hand edit of either page, or a result file committed without the page
// regenerated, fails here.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { OUT as BENCHMARKS, renderBenchmarks } from "../../bench/report.ts";
import { OUT as RELIABILITY, renderReliability } from "../../scripts/reliability/report.ts";

test("docs/benchmarks.md is generated from bench/results/ (node --import tsx bench/report.ts)", () => {
  assert.equal(readFileSync(BENCHMARKS, "utf8"), renderBenchmarks());
});

test("docs/reliability.md is generated from docs/results/ (make reliability-docs)", () => {
  assert.equal(readFileSync(RELIABILITY, "utf8"), renderReliability());
});
