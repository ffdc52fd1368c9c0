// Every file in examples/ loads without a single issue.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatConfigIssues, parseConfigText } from "../../src/config/index.ts";
import { createEngine } from "../../src/engine/engine.ts";
import type { NodeState } from "../../src/model/state.ts";
import { FakeKernel } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";

// import.meta.dirname needs Node 20.11; engines allows 20.9.
const here = fileURLToPath(new URL(".", import.meta.url));

const examplesDir = join(here, "..", "..", "examples");
const files = readdirSync(examplesDir).filter(
  (f) => f.endsWith(".yaml") || f.endsWith(".yml") || f.endsWith(".json"),
);

test("examples/ holds the article's four cases, case 3 under IPVS, dual-stack and the full reference", () => {
  for (const name of [
    "case1-same-subnet.yaml",
    "case2-route.yaml",
    "case3-source.yaml",
    "case3-ipvs-source.yaml",
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
  const ipvs = load("case3-ipvs-source.yaml");
  assert.equal(ipvs.kubeProxyMode, "ipvs");
  assert.equal(ipvs.networks[0]?.method, "source");
  assert.deepEqual(ipvs.networks[0]?.gateways, { 4: "1.2.3.1" });
  assert.deepEqual(load("case4-pods.yaml").podCIDRs, ["10.112.0.0/12"]);
  const dual = load("dual-stack.yaml").networks[0];
  // Not the docs' management network (eth0's 2001:db8:1::/64, its router 2001:db8:1::1: docs/lab.md):
  // copied onto the lab's node, a pool there would be the node's own subnet on another interface.
  assert.deepEqual(dual?.gateways, { 4: "1.2.3.1", 6: "2001:db8:4::1" });
  assert.deepEqual(dual?.addresses, ["1.2.3.0/24", "2001:db8:4::/64"]);
});

test("case3-source.yaml says up front that it uses connmark, and where the source rule is", () => {
  const header = readFileSync(join(examplesDir, "case3-source.yaml"), "utf8")
    .split("\n")
    .slice(0, 8)
    .join("\n");
  assert.match(header, /uses method connmark, not the article's source rule/);
  assert.match(header, /examples\/case3-ipvs-source\.yaml/);
});

test("the two case 3 examples plan what their headers say, on the IPVS case's node", async () => {
  const node = JSON.parse(
    readFileSync(join(here, "..", "plan", "cases", "case4-ipvs-source", "node.json"), "utf8"),
  ) as NodeState;
  const planOf = async (name: string) => {
    const result = parseConfigText(readFileSync(join(examplesDir, name), "utf8"));
    assert.ok(result.ok);
    return createEngine({ kernel: new FakeKernel(node), store: new MemoryStore() }).plan(result.config);
  };
  const texts = (report: Awaited<ReturnType<typeof planOf>>) =>
    report.payloads.ip.flatMap((b) => b.lines).filter((l) => l.startsWith("rule add"));

  const ipvs = await planOf("case3-ipvs-source.yaml");
  assert.equal(ipvs.kubeProxyMode, "ipvs");
  assert.deepEqual(
    ipvs.networks.map((n) => n.method),
    ["source"],
  );
  const ipvsRules = texts(ipvs);
  assert.ok(
    ipvsRules.some((l) => /from 1\.2\.3\.0\/24 to 10\.112\.0\.0\/12 lookup 254/.test(l)) &&
      ipvsRules.some((l) => /from 1\.2\.3\.0\/24 lookup 2\d{4} /.test(l)),
    ipvsRules.join("\n"),
  );

  const connmark = await planOf("case3-source.yaml");
  assert.deepEqual(
    connmark.networks.map((n) => n.method),
    ["connmark"],
  );
  assert.ok(
    texts(connmark).some((l) => / fwmark 0x1\/0xff lookup 2\d{4} /.test(l)),
    texts(connmark).join("\n"),
  );
});
