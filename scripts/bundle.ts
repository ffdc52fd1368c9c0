// `make build`, second step: the CLI as a few ESM files in dist/bundle/ (bin/symroute runs them),
// and plan, apply and delete as one CommonJS file beside them (dist/bundle/core.cjs).
// One-shot commands pay Node's module loading on every run; a bundle reads a handful of files
// instead of every module of src/ and of the small libraries the commands use. Splitting keeps the
// per-command lazy loading of src/cli/main.ts. The agent's heavy dependencies (Kubernetes client,
// logging, metrics) stay external: only `symroute agent` loads them, from node_modules.
// dist/bundle/ sits as deep as dist/lab/, so paths the lab derives from import.meta.url still hold.

import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { build } from "esbuild";

const REPO = resolve(import.meta.dirname, "..");
const OUT = join(REPO, "dist/bundle");

rmSync(OUT, { recursive: true, force: true });
await build({
  // early-start first (bin/symroute imports it before main): the node's reads start while the
  // command's modules load.
  entryPoints: [join(REPO, "src/cli/early-start.ts"), join(REPO, "src/cli/main.ts")],
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: true,
  logLevel: "warning",
  external: ["@kubernetes/client-node", "pino", "prom-client"],
  // Bundled CommonJS libraries (commander) call require() for Node's own modules.
  banner: {
    js: "import { createRequire as symrouteCreateRequire } from 'node:module'; const require = symrouteCreateRequire(import.meta.url);",
  },
});
// plan, apply and delete: one CommonJS file that bin/symroute compiles with V8's code cache (see
// src/cli/core-main.ts). Nothing in it may need ESM-only packages (the agent's are not in it).
const core = await build({
  entryPoints: [join(REPO, "src/cli/core-main.ts")],
  outfile: join(OUT, "core.cjs"),
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  sourcemap: true,
  logLevel: "warning",
  metafile: true,
  external: ["@kubernetes/client-node", "pino", "prom-client"],
});
const strays = Object.keys(core.metafile.inputs).filter((input) =>
  /src\/(agent|lab)\/|@kubernetes|pino|prom-client/.test(input),
);
if (strays.length > 0) throw new Error(`core.cjs must not contain ${strays.join(", ")}`);
