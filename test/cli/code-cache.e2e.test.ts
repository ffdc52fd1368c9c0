// bin/symroute's code cache for plan, apply and delete: written after the first run that went
// well, used as it is afterwards, never taken from a file others may write, and never written after
// a failure. Runs a private copy of the built CLI, so that the tree's own cache files stay as they are.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, createNode, e2eUnavailable } from "../support/netns.ts";

const skip = e2eUnavailable();
// Without the build the test fails (make build), it does not skip.
if (skip === undefined && !existsSync(join(REPO, "dist/bundle/core.cjs")))
  throw new Error("dist/bundle/core.cjs is missing: run make build first");

const CONFIG = `networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;

/**
 * A private copy of the built CLI, a node namespace, and `plan CONFIG` there with that copy; the
 * copy's cache file for a command is `cache(command)`.
 */
function privateRun(t: TestContext) {
  const node = createNode(t);
  const root = mkdtempSync(join(tmpdir(), "symroute-cache-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  cpSync(join(REPO, "bin"), join(root, "bin"), { recursive: true });
  cpSync(join(REPO, "dist/bundle/core.cjs"), join(root, "dist/bundle/core.cjs"));
  const cli = join(root, "bin/symroute");
  const planWith = (text: string) => {
    const config = join(root, "config.yaml");
    writeFileSync(config, text);
    return node.exec([process.execPath, cli, "plan", "-c", config, "--state-dir", node.stateDir]);
  };
  return {
    plan: () => planWith(CONFIG),
    planWith,
    cache: (command: string) => join(root, `dist/bundle/core.cjs.${command}.cache`),
  };
}

test("plan writes its code cache after a good run, then uses it unchanged", { skip }, (t) => {
  const { plan, planWith, cache } = privateRun(t);
  const refused = planWith("networks: [{name: BAD}]\n");
  assert.equal(refused.code, 1);
  assert.equal(existsSync(cache("plan")), false, "no cache from a failed run");

  const first = plan();
  assert.equal(first.code, 2, first.stderr);
  assert.ok(existsSync(cache("plan")), "the first good run writes the cache");
  const written = statSync(cache("plan"));
  assert.equal(written.mode & 0o777, 0o644);

  const second = plan();
  assert.equal(second.code, 2, second.stderr);
  assert.equal(second.stdout, first.stdout, "the same output with the cache");
  assert.equal(statSync(cache("plan")).mtimeMs, written.mtimeMs, "an accepted cache is not written again");
});

test(
  "a cache others may write is not used, nor one made for other source; both are written anew",
  { skip },
  (t) => {
    const { plan, cache } = privateRun(t);
    const first = plan();
    assert.equal(first.code, 2, first.stderr);

    // A good cache that anyone could have written: not trusted, so replaced by a cache of its own
    // (an accepted one would have been left as it is, mode and all).
    chmodSync(cache("plan"), 0o666);
    const second = plan();
    assert.equal(second.code, 2, second.stderr);
    assert.equal(statSync(cache("plan")).mode & 0o777, 0o644);

    // Garbage with the right permissions: V8 refuses it, the run goes on, and the cache is rewritten.
    writeFileSync(cache("plan"), "not a code cache");
    chmodSync(cache("plan"), 0o644);
    const third = plan();
    assert.equal(third.code, 2, third.stderr);
    assert.equal(third.stdout, first.stdout);
    assert.ok(statSync(cache("plan")).size > 1000, "rewritten after V8 refused it");
  },
);
