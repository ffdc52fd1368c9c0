// Golden cases: test/config/cases/<name>/config.yaml (or config.txt) and expected.json, which holds either
// {"config": <the validated Config>} or {"issues": [<the exact formatted lines>]}.
// `make golden` rewrites expected.json from the current output (review the diff!).

import { test } from "node:test";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatConfigIssues, parseConfigText } from "../../src/config/index.ts";
import { assertGoldenJson } from "../support/golden.ts";

// import.meta.dirname needs Node 20.11; engines allows 20.9.
const here = fileURLToPath(new URL(".", import.meta.url));

const casesDir = join(here, "cases");

for (const name of readdirSync(casesDir).sort()) {
  test(`config case ${name}`, () => {
    const dir = join(casesDir, name);
    // config.txt holds inputs that are not YAML at all, which prettier (make lint) cannot parse.
    const input = existsSync(join(dir, "config.yaml")) ? "config.yaml" : "config.txt";
    const text = readFileSync(join(dir, input), "utf8");
    const result = parseConfigText(text);
    const actual = result.ok
      ? { config: result.config }
      : { issues: formatConfigIssues(input, result.issues) };
    assertGoldenJson(join(dir, "expected.json"), actual);
  });
}
