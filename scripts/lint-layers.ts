// Layering rule (after VS Code's code-layering lint): the layer of a file is its folder under src/,
// and each layer may import only from the layers listed for it. The pure core also may not touch
// `node:*`, `process`, the clock or randomness.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { counted } from "../src/model/plural.ts";

// A tree other than this one (a test plants a forbidden import in a copy) may be named.
const ROOT = resolve(process.argv[2] ?? resolve(import.meta.dirname, ".."));
const SRC = join(ROOT, "src");

const PURE = ["model", "config", "plan", "render", "simulate", "verify"] as const;
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  model: ["model"],
  config: ["model", "config"],
  // Plan and render meet only in the model (the firewall spec, its rules' keys, the changes).
  plan: ["model", "config", "plan"],
  render: ["model", "render"],
  simulate: ["model", "plan", "render", "simulate"],
  verify: ["model", "plan", "render", "simulate", "verify"],
  engine: [...PURE, "engine"],
  adapters: [...PURE, "engine", "adapters"],
  cli: ["*"],
  agent: ["*"],
  lab: ["*"],
};
/** Packages the pure core may use: they do no I/O. */
const PURE_PACKAGES = new Set(["zod", "yaml"]);
const IMPURE_GLOBALS: readonly [RegExp, string][] = [
  [/\bprocess\./, "process"],
  [/\bDate\.now\(|\bnew Date\(/, "the clock"],
  [/\bMath\.random\(/, "randomness"],
  [/\bperformance\.now\(/, "the clock"],
  [/\bsetTimeout\(|\bsetInterval\(/, "timers"],
];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : path.endsWith(".ts") ? [path] : [];
  });
}

const layerOf = (file: string): string => relative(SRC, file).split("/")[0] ?? "";
const problems: string[] = [];
const files = walk(SRC);

for (const file of files) {
  const layer = layerOf(file);
  const allowed = ALLOWED[layer];
  const rel = relative(ROOT, file);
  if (allowed === undefined) {
    problems.push(`${rel}: folder src/${layer} is not a known layer; add it to scripts/lint-layers.ts`);
    continue;
  }
  const text = readFileSync(file, "utf8");
  const isPure = (PURE as readonly string[]).includes(layer);
  const specifiers = [
    ...text.matchAll(/(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g),
  ].map((m) => m[1] ?? m[2] ?? "");
  for (const spec of specifiers) {
    if (spec.startsWith(".")) {
      const target = resolve(dirname(file), spec);
      const targetLayer = layerOf(target);
      if (!allowed.includes("*") && !allowed.includes(targetLayer)) {
        problems.push(`${rel}: src/${layer} may not import src/${targetLayer} ("${spec}")`);
      }
    } else if (isPure) {
      const pkg = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec);
      if (!PURE_PACKAGES.has(pkg)) problems.push(`${rel}: the pure core may not import "${spec}"`);
    } else if (layer === "engine" && spec.startsWith("node:")) {
      problems.push(`${rel}: src/engine depends on ports, not on "${spec}"`);
    }
  }
  if (isPure) {
    const code = text.replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const [pattern, what] of IMPURE_GLOBALS) {
      if (pattern.test(code)) problems.push(`${rel}: the pure core may not use ${what}`);
    }
  }
}

if (problems.length > 0) {
  console.error(`layering: ${counted(problems.length, "problem")}`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`layering: ${files.length} files checked, no problems`);
