// Fuzzing, the other half: inputs that are invalid by construction (a valid file with one field
// broken in a way no valid file can have) must be rejected, with an issue that names that field.
// Without this, a loader that accepted everything, or rejected with no field, would pass the fuzz.
// Runs per property: SYMROUTE_FUZZ_RUNS (default 300; `make fuzz` sets 10000).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import { parseConfigText, validateConfigObject } from "../../src/config/index.ts";
import { configToDocument } from "./serialize.ts";
import { validConfig } from "./arbitraries.ts";

const runs = Number(process.env["SYMROUTE_FUZZ_RUNS"] ?? "300");

type Path = readonly (string | number)[];
type Document = Record<string, unknown> & { networks: Record<string, unknown>[] };

interface Breakage {
  /** What is broken, for the failure message. */
  readonly what: string;
  /** The field an issue must name (the issue's path starts with it). */
  readonly path: Path;
  readonly value: unknown;
}

/** Values no valid file has in these fields, each paired with the field. */
const networkBreakages = (i: number, doc: Document): fc.Arbitrary<Breakage> => {
  const network = doc.networks[i] as Record<string, unknown>;
  const addresses = network["addresses"] as string[];
  const arbs: fc.Arbitrary<Breakage>[] = [
    fc
      .constantFrom("Upper", "has space", "under_score", "-lead", "trail-", "dot.ted", "", "x".repeat(64))
      .map((value) => ({ what: "network name", path: ["networks", i, "name"], value })),
    fc
      .constantFrom("a".repeat(16), "eth/0", "eth 0", "", "..", "ä0", "-lead")
      .map((value) => ({ what: "interface name", path: ["networks", i, "interface"], value })),
    fc
      .tuple(
        fc.nat({ max: Math.max(0, addresses.length - 1) }),
        fc.constantFrom("10.0.0.0/33", "10.0.0.1/24", "300.1.2.0/24", "2001:db8::/129", "nope", "10.0.0.0/"),
      )
      .map(([j, bad]) => ({
        what: "address",
        path: ["networks", i, "addresses", j],
        value: addresses.map((a, k) => (k === j ? bad : a)),
      }))
      .map((b) => ({ ...b, path: ["networks", i, "addresses"] })),
    fc
      .constantFrom("300.1.1.1", "1.2.3", "gateway", "2001:db8::g")
      .map((value) => ({ what: "gateway", path: ["networks", i, "gateway"], value })),
    fc
      .constantFrom(0, -1, 4294967296, 1.5, "main")
      .map((value) => ({ what: "table", path: ["networks", i, "table"], value })),
    fc
      .constantFrom("bogus", "", 7, "CONNMARK")
      .map((value) => ({ what: "method", path: ["networks", i, "method"], value })),
  ];
  return fc.oneof(...arbs).map((b) => ({ ...b, what: `${b.what} of network ${i}` }));
};

const topLevelBreakages: fc.Arbitrary<Breakage> = fc.oneof(
  fc.constantFrom("pf", "", "NFTABLES").map((value) => ({ what: "firewall", path: ["firewall"], value })),
  fc.constantFrom("userspace", 3).map((value) => ({ what: "kubeProxyMode", path: ["kubeProxyMode"], value })),
  fc
    .constantFrom(0, 4, 256, -5, "kernel")
    .map((value) => ({ what: "routeProtocol", path: ["routeProtocol"], value })),
  fc
    .constantFrom(-1, 4294967296, "lots", 0.5)
    .map((value) => ({ what: "marks.mask", path: ["marks", "mask"], value })),
);

function setAt(doc: Document, path: Path, value: unknown): Document {
  const copy = structuredClone(doc);
  let node = copy as unknown as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1] as string | number] = value;
  return copy;
}

const startsWith = (path: Path, prefix: Path): boolean => prefix.every((p, k) => path[k] === p);

/** The loader must refuse `doc`, and one of its issues must name `path` (or a field inside it). */
function mustReject(doc: unknown, path: Path, what: string): void {
  for (const [how, result] of [
    ["object", validateConfigObject(doc)],
    ["YAML text", parseConfigText(stringify(doc))],
  ] as const) {
    assert.equal(result.ok, false, `${what}: accepted (${how}): ${JSON.stringify(doc)}`);
    if (result.ok) return;
    assert.ok(
      result.issues.some((issue) => startsWith(issue.path, path)),
      `${what} (${how}): no issue names ${JSON.stringify(path)}; issues: ${JSON.stringify(result.issues)}`,
    );
  }
}

test("fuzz: one field of a valid file broken by construction is refused, naming the field", (t) => {
  let cases = 0;
  fc.assert(
    fc.property(
      validConfig.chain((config) => {
        const doc = configToDocument(config) as Document;
        const picks = [topLevelBreakages, ...doc.networks.map((_, i) => networkBreakages(i, doc))];
        return fc.tuple(fc.constant(doc), fc.oneof(...picks));
      }),
      ([doc, breakage]) => {
        cases++;
        // The unbroken file is accepted: the rejection below is the breakage's doing.
        assert.equal(
          validateConfigObject(doc).ok,
          true,
          `the valid file was refused: ${JSON.stringify(doc)}`,
        );
        mustReject(setAt(doc, breakage.path, breakage.value), breakage.path, breakage.what);
      },
    ),
    { numRuns: runs },
  );
  t.diagnostic(`broken fields: ${cases} cases`);
});

test("fuzz: an unknown key, in the document or in a network, is refused, naming it", (t) => {
  let cases = 0;
  fc.assert(
    fc.property(
      validConfig,
      fc.constantFrom("colour", "gatway", "Networks", "mtu"),
      fc.nat(),
      (config, key, at) => {
        cases++;
        const doc = configToDocument(config) as Document;
        const inNetwork = doc.networks.length > 0 && at % 2 === 1;
        const i = at % Math.max(1, doc.networks.length);
        const path: Path = inNetwork ? ["networks", i, key] : [key];
        const broken = setAt(doc, path, "x");
        for (const result of [validateConfigObject(broken), parseConfigText(stringify(broken))]) {
          assert.equal(result.ok, false, `unknown key ${JSON.stringify(path)} accepted`);
          if (result.ok) return;
          assert.ok(
            result.issues.some(
              (issue) =>
                startsWith(issue.path, path.slice(0, -1)) &&
                `${issue.path.join(".")} ${issue.message}`.includes(key),
            ),
            `unknown key ${JSON.stringify(path)}: no issue names it: ${JSON.stringify(result.issues)}`,
          );
        }
      },
    ),
    { numRuns: runs },
  );
  t.diagnostic(`unknown keys: ${cases} cases`);
});

test("fuzz: two networks with one name are refused, naming the second", (t) => {
  let cases = 0;
  fc.assert(
    fc.property(
      validConfig.filter((c) => c.networks.length >= 2),
      (config) => {
        cases++;
        const doc = configToDocument(config) as Document;
        const first = doc.networks[0] as Record<string, unknown>;
        mustReject(setAt(doc, ["networks", 1, "name"], first["name"]), ["networks", 1], "a repeated name");
      },
    ),
    { numRuns: Math.max(20, Math.floor(runs / 3)) },
  );
  t.diagnostic(`repeated names: ${cases} cases`);
});
