// scripts/check-test-run.ts, the proof of a test run: given what scripts/run-tests.sh left per file
// (events and exit code), it must fail a run with a file that produced nothing, a skip that names no
// missing feature, a todo, or a runner that failed without a failed test.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { explainedSkip, missing } from "../support/skip.ts";
import { REPO } from "../support/netns.ts";

interface Ev {
  result?: "pass" | "fail";
  name?: string;
  skip?: string | boolean;
  todo?: string;
}

/** Runs the checker on files a.test.ts, b.test.ts, ... each with its events and exit code. */
function check(files: { events: Ev[]; rc?: number; ms?: number }[]): { code: number; out: string } {
  const dir = mkdtempSync(join(tmpdir(), "symroute-check-run-"));
  try {
    const names = files.map((_, i) => join(dir, `${String.fromCharCode(97 + i)}.test.ts`));
    files.forEach((f, i) => {
      // "$FILE" stands for the file's own path: how the runner reports a file that ran no test.
      const lines = f.events.map((e) =>
        JSON.stringify({ result: "pass", name: "a test", nesting: 0, suite: false, ...e }).replace(
          "$FILE",
          names[i] as string,
        ),
      );
      writeFileSync(join(dir, `${i + 1}.jsonl`), lines.map((l) => `${l}\n`).join(""));
      writeFileSync(join(dir, `${i + 1}.rc`), `${f.rc ?? 0}\n`);
      if (f.ms !== undefined) writeFileSync(join(dir, `${i + 1}.ms`), `${f.ms}\n`);
    });
    const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/check-test-run.ts", dir, ...names], {
      cwd: REPO,
      encoding: "utf8",
    });
    return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a run where every file passed, with explained skips, passes and prints the counts", () => {
  const r = check([
    { events: [{}, {}] },
    { events: [{ skip: missing("802.1Q VLAN", "Unknown device type") }, {}] },
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /3 passed, 0 failed, 1 skipped \(1 missing 802\.1Q VLAN\), from 2 files/);
});

test("a skip without a missing feature fails the run", () => {
  for (const skip of ["needs the build", true, "missing: IPVS-ish", "missing: something else"]) {
    const r = check([{ events: [{ skip }] }]);
    assert.equal(r.code, 1, `${String(skip)}: ${r.out}`);
    assert.match(r.out, /skipped without a missing feature/);
  }
});

test("a file that produced no test results fails the run", () => {
  const r = check([{ events: [{}] }, { events: [] }]);
  assert.equal(r.code, 1);
  assert.match(r.out, /b\.test\.ts: produced no test results/);
});

test("a file that ran nothing and exited 0 (reported under its own name) fails the run", () => {
  const r = check([{ events: [{ name: "$FILE" }] }]);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /a\.test\.ts: produced no test results/);
  const elsewhere = check([{ events: [{ name: "/x/a.test.ts" }] }]);
  assert.equal(elsewhere.code, 0, "a test merely named like another path still counts");
});

test("a todo, a failed test and a runner that failed without a failed test each fail the run", () => {
  assert.match(check([{ events: [{ todo: "later" }] }]).out, /marked todo/);
  const failedTest = check([{ events: [{ result: "fail" }], rc: 1 }]);
  assert.equal(failedTest.code, 1);
  assert.match(failedTest.out, /0 passed, 1 failed/);
  const crashed = check([{ events: [{}], rc: 7 }]);
  assert.equal(crashed.code, 1);
  assert.match(crashed.out, /the runner exited 7 without a failed test/);
});

test("the allowed skip messages: missing: <feature>, optionally followed by what was seen", () => {
  assert.equal(explainedSkip("missing: root"), "root");
  assert.equal(explainedSkip("missing: dummy links (ip link add type dummy: not supported)"), "dummy links");
  assert.equal(explainedSkip("missing: rootless"), undefined);
  assert.equal(explainedSkip("needs root"), undefined);
  assert.equal(explainedSkip(true), undefined);
});

test("the slowest files are listed, slowest first, with their wall times", () => {
  const r = check([
    { events: [{}], ms: 1_200 },
    { events: [{}], ms: 152_345 },
    { events: [{}] },
    { events: [{}], ms: 30_000 },
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(
    r.out,
    /slowest files \(wall\):\n +152\.3 s +\S+b\.test\.ts\n +30\.0 s +\S+d\.test\.ts\n +1\.2 s +\S+a\.test\.ts\n/,
  );
  assert.doesNotMatch(r.out, /c\.test\.ts/, "a file without a wall time is left out");
});

test("scripts/slow-tests.txt (run-tests.sh starts these first) names test files that exist", () => {
  const listed = readFileSync(join(REPO, "scripts/slow-tests.txt"), "utf8")
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"));
  assert.ok(listed.length > 0);
  for (const file of listed) assert.ok(file.endsWith(".test.ts") && existsSync(join(REPO, file)), file);
  assert.equal(new Set(listed).size, listed.length, "each file once");
});
