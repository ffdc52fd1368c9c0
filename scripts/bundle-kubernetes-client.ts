// `make build`, after tsc: replaces dist/agent/kubernetes/client-node.js (a re-export of the few
// @kubernetes/client-node names the agent uses) by one file holding only the package code those
// names reach. Loading the whole package costs the agent about 70 MiB of resident memory, the
// bundle about 20 MiB (docs/agent.md, "Memory"). The agent loads it only with --kubernetes.
// esbuild comes with tsx; the build fails if it is missing rather than shipping the heavy path.

import { build } from "esbuild";
import { statSync } from "node:fs";
import { join } from "node:path";

const file = join(import.meta.dirname, "..", "dist", "agent", "kubernetes", "client-node.js");
await build({
  entryPoints: [file],
  outfile: file,
  allowOverwrite: true,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // The package's CommonJS dependencies call require(): give the ES module one.
  banner: {
    js: 'import { createRequire as symrouteRequire } from "node:module";\nconst require = symrouteRequire(import.meta.url);',
  },
  // Whitespace and syntax only: names stay, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: false,
  logLevel: "warning",
});
console.log(`bundled ${file} (${Math.round(statSync(file).size / 1024)} KiB)`);
