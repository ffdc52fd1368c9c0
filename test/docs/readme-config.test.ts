// README's configuration table names every field of the file, and no field the file does not have
// (docs/config.md's tables are checked against the schema by test/config/docs-table.test.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { configSchema, networkSchema } from "../../src/config/schema.ts";

test("README's configuration table lists exactly the configuration's fields", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n## Configuration\n");
  assert.ok(start >= 0, "README has a Configuration section");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  const listed = [...section.matchAll(/^\| `([A-Za-z.[\]]+)`/gm)].map((m) => m[1]);
  const fields = [
    ...Object.keys(configSchema.shape).filter((k) => k !== "networks"),
    ...Object.keys(networkSchema.shape).map((k) => `networks[].${k}`),
  ];
  assert.deepEqual([...listed].sort(), [...fields].sort());
});
