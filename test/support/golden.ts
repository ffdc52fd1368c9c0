// Golden files are read by tests, never written by them: a missing or different golden fails. Only
// an explicit `make golden` (UPDATE_GOLDEN=1) rewrites them, and the diff is then reviewed in git.

import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { relative } from "node:path";

export const UPDATE_GOLDEN = process.env["UPDATE_GOLDEN"] === "1";

const HOW = "run `make golden` (UPDATE_GOLDEN=1) to rewrite it, then review the diff";

function shown(file: string): string {
  return relative(process.cwd(), file) || file;
}

/** `actual` must equal the text of `file` byte for byte. */
export function assertGoldenText(file: string, actual: string): void {
  if (UPDATE_GOLDEN) {
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) assert.fail(`golden file ${shown(file)} is missing; ${HOW}`);
  assert.equal(actual, readFileSync(file, "utf8"), `output differs from golden file ${shown(file)}; ${HOW}`);
}

/** `actual` must equal the JSON value in `file` (formatting aside: the file may be reformatted). */
export function assertGoldenJson(file: string, actual: unknown): void {
  const normalised: unknown = JSON.parse(JSON.stringify(actual));
  if (UPDATE_GOLDEN) {
    writeFileSync(file, `${JSON.stringify(normalised, null, 2)}\n`);
    return;
  }
  if (!existsSync(file)) assert.fail(`golden file ${shown(file)} is missing; ${HOW}`);
  assert.deepEqual(
    normalised,
    JSON.parse(readFileSync(file, "utf8")),
    `output differs from golden file ${shown(file)}; ${HOW}`,
  );
}
