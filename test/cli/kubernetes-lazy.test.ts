// The one-shot commands load the Kubernetes client only with --kubernetes (docs/agent.md, "Memory":
// the client is most of the agent's memory and start-up). Walks the static imports of the built
// modules (dist/, `make build`: type imports are gone there): what `plan` and `doctor` load at start
// must not reach the client; the module their --kubernetes loads does.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));
const CLIENT = join(DIST, "agent/kubernetes/client-node.js");

/** Every module `entry` loads before it runs (static `import`/`export ... from`, not `import()`). */
function staticClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const walk = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/^(?:import|export)\s(?:[^;]*?\sfrom\s)?["']([^"']+)["']/gms)) {
      const spec = m[1] as string;
      if (spec.startsWith(".")) walk(resolve(dirname(file), spec));
      else seen.add(spec);
    }
  };
  walk(entry);
  return seen;
}

test("plan and doctor load no Kubernetes client until --kubernetes asks for it", () => {
  assert.ok(existsSync(CLIENT), "dist/ is missing: run make build first");
  for (const command of ["core.js", "doctor.js", "explain.js"]) {
    const loaded = staticClosure(join(DIST, "cli/commands", command));
    assert.ok(!loaded.has(CLIENT), `${command} loads ${CLIENT}`);
    assert.ok(!loaded.has("@kubernetes/client-node"), `${command} loads @kubernetes/client-node`);
    assert.ok(
      !loaded.has(join(DIST, "cli/cluster-config.js")),
      `${command} loads cluster-config.js at start`,
    );
  }
  // The walk sees the client where it is: the module --kubernetes loads.
  assert.ok(staticClosure(join(DIST, "cli/cluster-config.js")).has(CLIENT));
});
