// Case folders: config.yaml + node.json (the observed node) [+ saved.json] -> expected.txt, the plan
// and the exact payloads as `symroute plan --payloads` prints them. `make golden` rewrites them.

import { test } from "node:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfigText } from "../../src/config/index.ts";
import { createEngine } from "../../src/engine/engine.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import type { NodeState } from "../../src/model/state.ts";
import { formatPayloadsText, formatPlanText } from "../../src/cli/commands/core.ts";
import { FakeKernel } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { assertGoldenText } from "../support/golden.ts";

const CASES = join(import.meta.dirname, "cases");

for (const name of readdirSync(CASES).sort()) {
  test(`plan case ${name}`, async () => {
    const dir = join(CASES, name);
    const parsed = parseConfigText(readFileSync(join(dir, "config.yaml"), "utf8"));
    if (!parsed.ok) throw new Error(`${name}/config.yaml: ${JSON.stringify(parsed.issues)}`);
    const node = JSON.parse(readFileSync(join(dir, "node.json"), "utf8")) as NodeState;
    const store = new MemoryStore();
    if (existsSync(join(dir, "saved.json")))
      store.state = JSON.parse(readFileSync(join(dir, "saved.json"), "utf8")) as SavedState;
    const kernel = new FakeKernel(node);
    const report = await createEngine({ kernel, store }).plan(parsed.config);
    // Colours depend on the terminal and on CI=true (picocolors): golden files hold plain text.
    const actual = (formatPlanText(report, "symroute plan") + formatPayloadsText(report)).replace(
      /\x1b\[[0-9;]*m/g,
      "",
    );
    assertGoldenText(join(dir, "expected.txt"), actual);
  });
}
