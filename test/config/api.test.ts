// The loader's API as other modules use it: results, formatting, the thrown error, purity.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  formatConfigIssues,
  formatPath,
  interfaceNameProblem,
  loadConfigOrThrow,
  parseConfigText,
  validateConfigObject,
} from "../../src/config/index.ts";
import { describe as describeValue, quoteString } from "../../src/config/issues.ts";
import { SymrouteError } from "../../src/model/errors.ts";

// import.meta.dirname needs Node 20.11; engines allows 20.9.
const here = fileURLToPath(new URL(".", import.meta.url));

const minimal = "networks:\n  - {name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}\n";

test("formatConfigIssues: FILE:LINE:COL path: message, and FILE path: message without a position", () => {
  const lines = formatConfigIssues("symroute.yaml", [
    { path: ["networks", 0, "gateway"], message: "m1", line: 3, col: 14 },
    { path: ["marks", "avoid", 1], message: "m2" },
    { path: [], message: "YAML: m3", line: 1, col: 1 },
    { path: ["networks", 0, "odd key\n"], message: "m4\u202e" },
  ]);
  assert.deepEqual(lines, [
    "symroute.yaml:3:14 networks[0].gateway: m1",
    "symroute.yaml marks.avoid[1]: m2",
    "symroute.yaml:1:1: YAML: m3",
    'symroute.yaml networks[0]["odd key\\n"]: m4\\u202e',
  ]);
});

test("formatPath and quoteString escape what a terminal would act on", () => {
  assert.equal(formatPath(["networks", 2, "vlan", "id"]), "networks[2].vlan.id");
  assert.equal(quoteString("a\u001b[31mb"), '"a\\u001b[31mb"');
  assert.equal(quoteString("x\u200by\u0301"), '"x\\u200by\\u0301"');
  assert.match(quoteString("a".repeat(100)), /^"a{64}"\.\.\. \(100 characters\)$/);
  assert.equal(describeValue([1]), "a list");
  assert.equal(describeValue({}), "a mapping");
  assert.equal(describeValue(Infinity), "Infinity (not finite)");
});

test("parseConfigText fills in every default", () => {
  const result = parseConfigText(minimal);
  assert.ok(result.ok);
  assert.deepEqual(result.config, {
    podCIDRs: [],
    networks: [
      {
        name: "public",
        addresses: ["1.2.3.0/24"],
        interface: "ext0",
        gateways: { 4: "1.2.3.1" },
        method: "auto",
      },
    ],
    firewall: "auto",
    kubeProxyMode: "auto",
    rulePriorities: { from: 1000, to: 1999 },
    tables: { from: 20000, to: 29999 },
    marks: { mask: 0xff, avoid: ["kube-proxy", "calico", "cilium"] },
    routeProtocol: 201,
  });
});

test("a missing field is placed at its parent", () => {
  const result = parseConfigText("networks:\n  - name: public\n    addresses: [1.2.3.0/24]\n");
  assert.ok(!result.ok);
  assert.deepEqual(
    result.issues.map((i) => [i.path, i.line, i.col]),
    [[["networks", 0, "interface"], 2, 5]],
  );
});

test("an unknown key is placed at the key, a bad value at the value", () => {
  const result = parseConfigText("networks: []\nfirewall:   nft\ncolour: blue\n");
  assert.ok(!result.ok);
  assert.deepEqual(
    result.issues.map((i) => [i.path.join("."), i.line, i.col]),
    [
      ["firewall", 2, 13],
      ["colour", 3, 1],
    ],
  );
});

test("validateConfigObject: the same checks for a custom resource spec, without positions", () => {
  const ok = validateConfigObject({
    networks: [{ name: "public", addresses: ["1.2.3.4/32"], interface: "ext0", gateway: ["1.2.3.1"] }],
    marks: { mask: 0x300, avoid: ["cilium"] },
  });
  assert.ok(!ok.ok);
  assert.deepEqual(ok.issues, [
    {
      path: ["marks", "mask"],
      message:
        'marks.mask 0x300 shares bits 0x300 with cilium (which uses 0xffff0f00); choose a mask clear of them, or remove "cilium" from marks.avoid',
    },
  ]);
  const good = validateConfigObject({ networks: [{ name: "a", addresses: ["1.2.3.4/32"], interface: "e" }] });
  assert.ok(good.ok);
  assert.deepEqual(good.config.networks[0]?.addresses, ["1.2.3.4"]);
  const notPlain = validateConfigObject(new Map([["networks", []]]));
  assert.ok(!notPlain.ok);
  assert.deepEqual(notPlain.issues[0]?.path, []);
});

test("loadConfigOrThrow returns the config, or throws one invalid-argument error listing every issue", () => {
  assert.equal(loadConfigOrThrow(minimal, "a.yaml").networks.length, 1);
  const text = "networks:\n  - {name: Bad, addresses: [1.2.3.4/24], interface: ext0}\n";
  assert.throws(
    () => loadConfigOrThrow(text, "/etc/symroute/config.yaml"),
    (error: unknown) => {
      assert.ok(error instanceof SymrouteError);
      assert.equal(error.kind, "invalid-argument");
      assert.equal(error.message, "/etc/symroute/config.yaml: 2 problems in the configuration");
      assert.equal(error.hint, "see docs/config.md");
      assert.deepEqual(error.details, [
        "/etc/symroute/config.yaml:2:12 networks[0].name: name \"Bad\" is not allowed; allowed: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        '/etc/symroute/config.yaml:2:29 networks[0].addresses[0]: address "1.2.3.4/24" has host bits set; did you mean "1.2.3.0/24" (the subnet) or "1.2.3.4" (the single address)?',
      ]);
      return true;
    },
  );
  assert.throws(
    () => loadConfigOrThrow("networks: [\n", "b.yaml"),
    /b\.yaml: 1 problem in the configuration/,
  );
});

test("interface names: the kernel's limits plus the characters that break tools", () => {
  for (const ok of ["eth0", "eth0.100", "ens1f0np0", "br_ext", "a", "abcdefghijklmno", "vlan-100"]) {
    assert.equal(interfaceNameProblem(ok), undefined, ok);
  }
  for (const bad of ["", ".", "..", "-x", "abcdefghijklmnop", "a/b", "a b", "a:b", "a'b", "a\u0000", "é"]) {
    assert.notEqual(interfaceNameProblem(bad), undefined, JSON.stringify(bad));
  }
});

test("src/config is pure: no node: imports, no process, no clock, no randomness", () => {
  const dir = join(here, "..", "..", "src", "config");
  for (const file of readdirSync(dir)) {
    const source = readFileSync(join(dir, file), "utf8");
    assert.doesNotMatch(source, /from "node:|require\(|\bprocess\.|Date\.now|new Date|Math\.random/, file);
  }
});
