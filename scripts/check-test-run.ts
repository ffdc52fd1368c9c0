// Proves a test run of scripts/run-tests.sh from what it left in DIR: for the n-th file given, the
// events scripts/test-events.mjs wrote (n.jsonl) and the runner's exit code (n.rc). Every file must
// have produced at least one test result; prints the counts of passed, failed and skipped tests;
// fails on any skip other than a missing feature of test/support/skip.ts, on a todo, and on a
// runner that failed; lists the slowest files with their wall times (n.ms, when there). Exit 1 when a
// check fails.
//   node --import tsx scripts/check-test-run.ts DIR FILE...
// With RUN_TESTS_RESULTS=FILE it also writes every test's outcome and diagnostics there, with the
// commit they ran on (docs/results/failures.json, read by scripts/reliability/report.ts).

import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { counted } from "../src/model/plural.ts";
import { explainedSkip, MISSING_FEATURES } from "../test/support/skip.ts";
import { runProvenance, writeResult } from "./reliability/results.ts";

interface TestEvent {
  readonly diagnostic?: string;
  readonly result: "pass" | "fail";
  readonly name: string;
  readonly file?: string;
  readonly nesting: number;
  readonly suite: boolean;
  readonly skip?: string | boolean;
  readonly todo?: string | boolean;
  readonly error?: string;
}

const [dir, ...files] = process.argv.slice(2);
/** How many of the slowest files the run lists with their wall times. */
const SLOWEST_SHOWN = 10;
if (dir === undefined || files.length === 0) {
  console.error("usage: check-test-run.ts DIR FILE...");
  process.exit(2);
}

const problems: string[] = [];
/** For RUN_TESTS_RESULTS: per file, its tests (leaves) with their outcome and diagnostics. */
interface Outcome {
  readonly name: string;
  readonly outcome: "passed" | "failed" | "skipped";
  readonly skip?: string;
  readonly error?: string;
  readonly diagnostics: string[];
}
const outcomes: { file: string; tests: Outcome[] }[] = [];
let passed = 0;
let failed = 0;
const skipped = new Map<string, number>();

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

files.forEach((given, i) => {
  const file = resolve(given);
  const text = read(join(dir, `${i + 1}.jsonl`));
  const rc = read(join(dir, `${i + 1}.rc`))?.trim();
  if (text === undefined || rc === undefined) {
    problems.push(`${given}: the runner left no results`);
    return;
  }
  const lines = text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as TestEvent);
  const tests: Outcome[] = [];
  outcomes.push({ file: given, tests });
  // Diagnostics belong to the result just before them at their nesting.
  const lastAt = new Map<number, Outcome>();
  for (const l of lines) {
    if (l.diagnostic === undefined) {
      if (l.suite) continue;
      const o: Outcome = {
        name: l.name,
        outcome:
          l.skip !== undefined && l.skip !== false ? "skipped" : l.result === "pass" ? "passed" : "failed",
        ...(typeof l.skip === "string" ? { skip: l.skip } : {}),
        ...(l.error === undefined ? {} : { error: l.error }),
        diagnostics: [],
      };
      tests.push(o);
      lastAt.set(l.nesting, o);
    } else lastAt.get(l.nesting)?.diagnostics.push(l.diagnostic);
  }
  const events = lines.filter((l) => l.diagnostic === undefined);
  let results = 0;
  for (const e of events) {
    // A file that ran no test at all is reported as one test named after the file itself.
    if (e.nesting === 0 && resolve(e.name) === file) {
      if (e.result === "fail") {
        failed++;
        problems.push(`${given}: the file failed outside its tests${e.error ? `: ${e.error}` : ""}`);
      }
      continue;
    }
    results++;
    const where = `${given}: ${e.name}`;
    if (e.todo !== undefined && e.todo !== false) {
      problems.push(`${where}: marked todo (${String(e.todo)})`);
      continue;
    }
    if (e.skip !== undefined && e.skip !== false) {
      const feature = explainedSkip(e.skip);
      if (feature === undefined)
        problems.push(`${where}: skipped without a missing feature: ${JSON.stringify(e.skip)}`);
      if (!e.suite) skipped.set(feature ?? "unexplained", (skipped.get(feature ?? "unexplained") ?? 0) + 1);
      continue;
    }
    if (e.suite) continue;
    if (e.result === "pass") passed++;
    else failed++;
  }
  if (results === 0) problems.push(`${given}: produced no test results`);
  if (rc !== "0" && !events.some((e) => e.result === "fail"))
    problems.push(`${given}: the runner exited ${rc} without a failed test`);
});

const skips = [...skipped.values()].reduce((a, b) => a + b, 0);
const why = [...skipped].map(([k, n]) => `${n} ${k === "unexplained" ? k : `missing ${k}`}`).join(", ");
console.log(
  `run-tests: ${passed} passed, ${failed} failed, ${skips} skipped${skips > 0 ? ` (${why})` : ""}, from ${counted(files.length, "file")}`,
);
// Where the time went (scripts/run-tests.sh writes each file's wall time to n.ms).
const walls = files
  .map((given, i) => ({ given, ms: Number(read(join(dir, `${i + 1}.ms`))?.trim() ?? Number.NaN) }))
  .filter((w) => Number.isFinite(w.ms))
  .sort((a, b) => b.ms - a.ms)
  .slice(0, SLOWEST_SHOWN);
if (walls.length > 0)
  console.log(
    `run-tests: the slowest files (wall):\n${walls.map((w) => `  ${(w.ms / 1000).toFixed(1).padStart(6)} s  ${w.given}`).join("\n")}`,
  );
if (problems.length > 0) {
  console.error(`run-tests: the run does not prove what it should:\n  ${problems.join("\n  ")}`);
  console.error(`run-tests: a skip must say "missing: <feature>", one of: ${MISSING_FEATURES.join(", ")}`);
}
if (failed > 0) console.error(`run-tests: ${counted(failed, "test")} failed`);
const resultsFile = process.env["RUN_TESTS_RESULTS"];
if (resultsFile !== undefined && resultsFile !== "") {
  writeResult(resultsFile, {
    kind: "tests",
    ...runProvenance(),
    ok: problems.length === 0 && failed === 0,
    passed,
    failed,
    skipped: skips,
    problems,
    files: outcomes,
  });
}
process.exit(problems.length > 0 || failed > 0 ? 1 : 0);
