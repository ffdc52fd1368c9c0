// README's list of `-o json` fields names every warning kind plan can give (warningDetails[].kind).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { WARNING_KINDS } from "../../src/plan/types.ts";

test("README lists every warning kind", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const listed = /`warningDetails\[\]` \(([^)]*)\)/.exec(readme)?.[1] ?? "";
  for (const kind of WARNING_KINDS) assert.ok(listed.includes(`\`${kind}\``), `README misses ${kind}`);
});
