// What the README and the hand-written docs point a reader to must be there: every relative link
// (and its #anchor, a heading of the page as GitHub makes anchors), and every file of the repository
// they name in the text (`src/...`, `test/...`, `deploy/...`: where a reader goes to check a claim).
// The generated pages (docs/benchmarks.md, docs/reliability.md) are checked by generated.test.ts.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const PAGES = [
  "README.md",
  ...["agent", "architecture", "config", "doctor", "explain", "kubernetes", "lab"].map((n) => `docs/${n}.md`),
];

/** A heading's anchor as GitHub makes it: lowercase, punctuation dropped, spaces to '-'. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(page: string): Set<string> {
  const text = readFileSync(join(root, page), "utf8");
  return new Set(
    text
      .split("\n")
      .filter((l) => /^#+ /.test(l))
      .map((l) => anchorOf(l.replace(/^#+ /, ""))),
  );
}

for (const page of PAGES) {
  test(`${page}: its links, anchors and the repository files it names exist`, () => {
    const text = readFileSync(join(root, page), "utf8");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1] as string;
      if (/^[a-z]+:/.test(link)) continue;
      const [path = "", anchor] = link.split("#");
      const target = path === "" ? page : join(dirname(page), path);
      assert.ok(existsSync(join(root, target)), `${page}: link to ${link}: no ${target}`);
      if (anchor !== undefined && target.endsWith(".md"))
        assert.ok(
          anchors(target).has(anchor),
          `${page}: link to ${link}: ${target} has no heading #${anchor}`,
        );
    }
    // Built output (dist/) and what a run writes (tmp/, .cache/) are not in the repository.
    for (const m of text.matchAll(
      /(?<![\w/.-])((?:src|test|bench|scripts|deploy|examples|docs|bin)\/[\w./-]*\w)/g,
    )) {
      const path = m[1] as string;
      if (path.includes("*")) continue;
      assert.ok(existsSync(join(root, path)), `${page} names ${path}, which is not in the repository`);
    }
  });
}
