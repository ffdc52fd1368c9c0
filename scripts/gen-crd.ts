// Writes deploy/crd.yaml from the config file's schema (src/config/schema.ts), so that the CRD and
// the file format cannot drift apart. Run: node --import tsx scripts/gen-crd.ts [--check]
// test/agent/manifests.test.ts fails when the committed file differs from what this prints.

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderCrdYaml } from "../src/agent/kubernetes/crd-yaml.ts";

const target = fileURLToPath(new URL("../deploy/crd.yaml", import.meta.url));
const text = renderCrdYaml();
if (process.argv.includes("--check")) {
  const current = readFileSync(target, "utf8");
  if (current !== text) {
    process.stderr.write("deploy/crd.yaml is out of date: run node --import tsx scripts/gen-crd.ts\n");
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target}\n`);
}
