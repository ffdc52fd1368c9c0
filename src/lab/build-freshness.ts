// Whether the compiled tree (dist/) is at least as new as every source file: then the lab may run
// the compiled probe and CLI (fast to start) even when it runs from source itself, without the
// risk of testing a stale build.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

let cached: boolean | undefined;

/** The compiled CLI and dist/lab/probe-main.js exist and are newer than every file under src/. */
export function builtTreeIsFresh(): boolean {
  if (cached !== undefined) return cached;
  const outputs = ["dist/cli/main.js", "dist/lab/probe-main.js"].map((p) => join(REPO_ROOT, p));
  if (!outputs.every((p) => existsSync(p)) || !existsSync(join(REPO_ROOT, "src"))) {
    cached = false;
    return cached;
  }
  const oldestOutput = Math.min(...outputs.map((p) => statSync(p).mtimeMs));
  cached = newestMtime(join(REPO_ROOT, "src")) <= oldestOutput;
  return cached;
}
