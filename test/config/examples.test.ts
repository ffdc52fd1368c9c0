// Every file in examples/ loads without a single issue.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatConfigIssues, parseConfigText } from "../../src/config/index.ts";

// import.meta.dirname needs Node 20.11; engines allows 20.9.
const here = fileURLToPath(new URL(".", import.meta.url));

const examplesDir = join(here, "..", "..", "examples");
const files = readdirSync(examplesDir).filter(
  (f) => f.endsWith(".yaml") || f.endsWith(".yml") || f.endsWith(".json"),
);

test("examples/ holds the article's four cases, dual-stack and the full reference", () => {
  for (const name of [
    "case1-same-subnet.yaml",
    "case2-route.yaml",
    "case3-source.yaml",
    "case4-pods.yaml",
    "dual-stack.yaml",
    "full-reference.yaml",
  ]) {
    assert.ok(files.includes(name), `examples/${name} is missing`);
  }
});

for (const file of files) {
  test(`examples/${file} loads without issues`, () => {
    const result = parseConfigText(readFileSync(join(examplesDir, file), "utf8"));
    assert.ok(result.ok, result.ok ? "" : formatConfigIssues(`examples/${file}`, result.issues).join("\n"));
  });
}

test("the examples say what the article's cases need", () => {
  const load = (name: string) => {
    const result = parseConfigText(readFileSync(join(examplesDir, name), "utf8"));
    assert.ok(result.ok);
    return result.config;
  };
  assert.equal(load("case1-same-subnet.yaml").networks[0]?.method, "none");
  assert.equal(load("case2-route.yaml").networks[0]?.method, "route");
  const case3 = load("case3-source.yaml").networks[0];
  assert.equal(case3?.method, "connmark");
  assert.deepEqual(case3?.vlan, { parent: "eth0", id: 100 });
  assert.deepEqual(case3?.gateways, { 4: "1.2.3.1" });
  assert.deepEqual(load("case4-pods.yaml").podCIDRs, ["10.112.0.0/12"]);
  const dual = load("dual-stack.yaml").networks[0];
  // Not the docs' management network (eth0's 2001:db8:1::/64, its router 2001:db8:1::1: docs/lab.md):
  // copied onto the lab's node, a pool there would be the node's own subnet on another interface.
  assert.deepEqual(dual?.gateways, { 4: "1.2.3.1", 6: "2001:db8:4::1" });
  assert.deepEqual(dual?.addresses, ["1.2.3.0/24", "2001:db8:4::/64"]);
});
