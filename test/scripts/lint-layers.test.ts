// scripts/lint-layers.ts, the layering rule: it passes this tree, and it fails a copy of the plan
// and render layers in which one imports the other (the back-edges issue 14 removed).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "../support/netns.ts";

function lint(root?: string): { code: number; out: string } {
  const args = ["--import", "tsx", "scripts/lint-layers.ts", ...(root === undefined ? [] : [root])];
  const r = spawnSync(process.execPath, args, { cwd: REPO, encoding: "utf8" });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

test("this tree keeps its layers", () => {
  const r = lint();
  assert.equal(r.code, 0, r.out);
});

for (const [from, to] of [
  ["plan", "render"],
  ["render", "plan"],
] as const) {
  test(`an import from src/${from} into src/${to} fails the lint`, () => {
    const root = mkdtempSync(join(tmpdir(), "symroute-layers-"));
    try {
      for (const layer of ["model", "config", "plan", "render"])
        cpSync(join(REPO, "src", layer), join(root, "src", layer), { recursive: true });
      const planted = join(root, "src", from, "planted.ts");
      writeFileSync(planted, `export { a } from "../${to}/anything.ts";\n`);
      const withBackEdge = lint(root);
      rmSync(planted);
      assert.equal(lint(root).code, 0, "the copy without the planted import passes");
      assert.equal(withBackEdge.code, 1, withBackEdge.out);
      assert.match(
        withBackEdge.out,
        new RegExp(`src/${from}/planted\\.ts: src/${from} may not import src/${to}`),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
