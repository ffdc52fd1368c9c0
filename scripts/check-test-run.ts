// Proves a test run of scripts/run-tests.sh from what it left in DIR: for the n-th file given, the
// events scripts/test-events.mjs wrote (n.jsonl) and the runner's exit code (n.rc). Every file must
// have produced at least one test result; prints the counts of passed, failed and skipped tests;
// fails on any skip other than a missing feature of test/support/skip.ts, on a todo, and on a
// runner that failed. Exit 1 when a check fails.
//   node --import tsx scripts/check-test-run.ts DIR FILE...

import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { explainedSkip, MISSING_FEATURES } from "../test/support/skip.ts";

interface TestEvent {
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
if (dir === undefined || files.length === 0) {
  console.error("usage: check-test-run.ts DIR FILE...");
  process.exit(2);
}

const problems: string[] = [];
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
  const events = text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as TestEvent);
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
  `run-tests: ${passed} passed, ${failed} failed, ${skips} skipped${skips > 0 ? ` (${why})` : ""}, from ${files.length} file(s)`,
);
if (problems.length > 0) {
  console.error(`run-tests: the run does not prove what it should:\n  ${problems.join("\n  ")}`);
  console.error(`run-tests: a skip must say "missing: <feature>", one of: ${MISSING_FEATURES.join(", ")}`);
}
if (failed > 0) console.error(`run-tests: ${failed} test(s) failed`);
process.exit(problems.length > 0 || failed > 0 ? 1 : 0);
