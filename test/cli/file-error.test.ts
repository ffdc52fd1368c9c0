// A file the CLI cannot read is named with the error in words and its code (for searching).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFileReadError, fileErrorText } from "../../src/cli/config-file.ts";
import { readSnapshot } from "../../src/cli/commands/explain.ts";

const failureOf = async (path: string): Promise<unknown> =>
  readFile(path, "utf8").then(
    () => assert.fail(path),
    (e: unknown) => e,
  );
const dir = mkdtempSync(join(tmpdir(), "symroute-file-error-"));

test("a missing file and a directory: words, then the code", async () => {
  assert.equal(fileErrorText(await failureOf(join(dir, "nope.yaml"))), "no such file or directory (ENOENT)");
  assert.equal(fileErrorText(await failureOf(dir)), "illegal operation on a directory (EISDIR)");
});

test("an error without a code, or with a message of another form, is still named", () => {
  assert.equal(fileErrorText(new Error("boom")), "Error: boom");
  assert.equal(fileErrorText(Object.assign(new Error("odd"), { code: "EIO" })), "EIO");
});

test("the configuration file's and the snapshot's messages carry them", async () => {
  const missing = join(dir, "nope.yaml");
  assert.equal(
    configFileReadError(missing, await failureOf(missing)).message,
    `cannot read the configuration file ${missing}: no such file or directory (ENOENT)`,
  );
  await assert.rejects(readSnapshot(missing), {
    message: `cannot read the snapshot ${missing}: no such file or directory (ENOENT)`,
  });
});
