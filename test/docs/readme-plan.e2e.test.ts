// The README's first example is what a new user runs first: its smallest config, planned on the
// article's node, must print exactly the plan the README shows (the state file's path aside, which
// depends on the namespace). The sample went stale once (it lost the guard, ARP probe, classify and
// rule-skip lines): this keeps it honest.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, e2eUnavailable, REPO } from "../support/netns.ts";

const skip = e2eUnavailable();

/** The fenced block that follows the first line of the README containing `after`. */
function blockAfter(readme: string, after: string): string {
  const at = readme.indexOf(after);
  assert.notEqual(at, -1, `README.md has no line with ${JSON.stringify(after)}`);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(match?.[1] !== undefined, `README.md has no code block after ${JSON.stringify(after)}`);
  return match[1];
}

// The state file is STATE_DIR/netns-DEV-INODE/state.json: the directory and inode differ per run.
const withoutStatePath = (text: string): string => text.replace(/^( {2}state: )\S+/m, "$1STATE_FILE");

test(
  "README: the smallest config's plan on the article's node is the one the README prints",
  { skip },
  (t) => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const config = blockAfter(readme, "A config file, the smallest useful one:");
    const expected = blockAfter(readme, "`symroute plan` on the article's node prints:");
    const dir = mkdtempSync(join(tmpdir(), "symroute-readme-"));
    chmodSync(dir, 0o755);
    const file = join(dir, "symroute.yaml");
    writeFileSync(file, config);
    const node = createNode(t);
    const plan = node.symroute(["plan", "-c", file]);
    assert.equal(plan.code, 2, `plan exits 2 (changes pending): ${plan.stderr}`);
    assert.equal(withoutStatePath(plan.stdout), withoutStatePath(expected));
  },
);
