// docs/config.md's "Errors at a glance" promises a golden test in test/config/cases/ for every case:
// each example message (its parts around "...") must be in some case's expected issues, so that a
// reworded message cannot leave the table showing words symroute no longer prints.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Every issue line of every golden case. */
function goldenIssues(): string {
  const cases = join(root, "test/config/cases");
  const lines: string[] = [];
  for (const name of readdirSync(cases)) {
    const expected = JSON.parse(readFileSync(join(cases, name, "expected.json"), "utf8")) as {
      issues?: string[];
    };
    lines.push(...(expected.issues ?? []));
  }
  return lines.join("\n");
}

test("docs/config.md: every example message of 'Errors at a glance' is printed by a golden case", () => {
  const doc = readFileSync(join(root, "docs/config.md"), "utf8");
  const start = doc.indexOf("## Errors at a glance");
  assert.ok(start >= 0, "docs/config.md has its 'Errors at a glance' table");
  const issues = goldenIssues();
  let rows = 0;
  for (const line of doc.slice(start).split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const message = /^`(.*)`$/.exec(cells[3] ?? "")?.[1];
    if (!line.startsWith("| ") || message === undefined) continue;
    rows++;
    for (const part of message.split("...")) {
      const words = part.trim().replace(/^[ ,;:]+|[ ,;:]+$/g, "");
      if (words === "") continue;
      assert.ok(issues.includes(words), `${cells[1]}: no golden case prints ${JSON.stringify(words)}`);
    }
  }
  assert.ok(rows >= 20, `rows read: ${rows}`);
});
