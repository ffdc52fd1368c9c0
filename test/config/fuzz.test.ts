// Property (b), fuzzing: hostile documents and mutated valid files never make the loader throw,
// every issue says where it is, and nothing hostile is ever accepted.
// Runs per property: SYMROUTE_FUZZ_RUNS (default 300; `make fuzz` sets 10000).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import {
  type ConfigIssue,
  type ConfigResult,
  formatConfigIssues,
  parseConfigText,
  validateConfigObject,
} from "../../src/config/index.ts";
import { configToDocument, configToYaml } from "./serialize.ts";
import { configSchema } from "../../src/config/schema.ts";

const TOP_LEVEL_KEYS = Object.keys(configSchema.shape);
import { formatIp, formatPrefix, parseIp, parsePrefix } from "../../src/model/address.ts";
import { hostileFragment, hostileString, hostileValue, validConfig } from "./arbitraries.ts";

const runs = Number(process.env["SYMROUTE_FUZZ_RUNS"] ?? "300");
const INTERFACE = /^[A-Za-z0-9_.-]{1,15}$/;
const NETWORK = /^[a-z0-9-]+$/;
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{M}]/u;
const DOCUMENT_LEVEL = /^(YAML: |the configuration |the document |alias |merge keys |keys that are not)/;

function checkIssue(issue: ConfigIssue, withPositions: boolean): void {
  assert.ok(issue.message.length > 0, "an issue without a message");
  if (withPositions) {
    assert.ok(
      issue.line !== undefined && issue.line >= 1 && issue.col !== undefined && issue.col >= 1,
      "no line:col",
    );
  }
  if (issue.path.length === 0) {
    // Only problems of the document itself (syntax, shape) have no field to name.
    assert.match(issue.message, DOCUMENT_LEVEL, `an issue with an empty path: ${issue.message}`);
    if (!withPositions) assert.match(issue.message, /^the configuration /);
    return;
  }
  const top = issue.path[0];
  assert.ok(
    (typeof top === "string" && TOP_LEVEL_KEYS.includes(top)) ||
      issue.message.startsWith("unknown key ") ||
      DOCUMENT_LEVEL.test(issue.message),
    `the path does not name a field: ${JSON.stringify(issue.path)} ${issue.message}`,
  );
}

/** The invariants every loader answer keeps, whatever the input. */
function checkResult(result: ConfigResult, withPositions: boolean): void {
  if (!result.ok) {
    assert.ok(result.issues.length > 0, "not ok, yet no issues");
    for (const issue of result.issues) checkIssue(issue, withPositions);
    for (const line of formatConfigIssues("fuzz.yaml", result.issues)) {
      assert.doesNotMatch(
        line,
        UNPRINTABLE,
        `an unprintable character reached the output: ${JSON.stringify(line)}`,
      );
    }
    return;
  }
  const { config } = result;
  for (const network of config.networks) {
    assert.match(network.name, NETWORK);
    assert.match(network.interface, INTERFACE);
    assert.ok(network.interface !== "." && network.interface !== "..");
    if (network.vlan !== undefined) assert.match(network.vlan.parent, INTERFACE);
    for (const address of network.addresses) {
      const prefix = parsePrefix(address, { strict: true });
      assert.ok(prefix !== undefined && formatPrefix(prefix) === address, `not canonical: ${address}`);
    }
    for (const gateway of Object.values(network.gateways)) {
      const ip = parseIp(gateway);
      assert.ok(ip !== undefined && formatIp(ip.family, ip.value) === gateway, `not canonical: ${gateway}`);
    }
  }
  if (config.stateDir !== undefined) assert.doesNotMatch(config.stateDir, UNPRINTABLE);
  // Whatever got in comes out the same way again.
  const again = parseConfigText(configToYaml(config));
  assert.ok(again.ok);
  assert.deepEqual(again.config, config);
}

function loadText(text: string): void {
  let result: ConfigResult;
  try {
    result = parseConfigText(text);
  } catch (error) {
    assert.fail(`parseConfigText threw on ${JSON.stringify(text.slice(0, 200))}: ${String(error)}`);
  }
  checkResult(result, true);
}

/** Every path to a value in a document, so a mutation can reach every field. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...prefix, i])));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  }
  return out;
}

function setAt(root: unknown, path: readonly (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const copy: unknown = structuredClone(root);
  let node = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1] as string | number] = replacement;
  return copy;
}

function counted(
  t: { diagnostic(message: string): void },
  name: string,
  body: (count: () => void) => void,
): void {
  let cases = 0;
  body(() => cases++);
  t.diagnostic(`${name}: ${cases} cases`);
}

test("fuzz: random text never throws and every issue has a place", (t) => {
  counted(t, "random text", (count) =>
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 200 }),
          fc.string({ unit: "grapheme", maxLength: 200 }),
          fc
            .array(fc.oneof(hostileFragment, hostileString), { maxLength: 30 })
            .map((parts) => parts.join("")),
        ),
        (text) => {
          count();
          loadText(text);
        },
      ),
      { numRuns: runs },
    ),
  );
});

test("fuzz: random YAML documents never throw and are never accepted with hostile names", (t) => {
  counted(t, "random documents", (count) =>
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.jsonValue(),
          fc.dictionary(fc.constantFrom(...TOP_LEVEL_KEYS), hostileValue),
        ),
        (value) => {
          count();
          checkResult(validateConfigObject(value), false);
          let text: unknown;
          try {
            text = stringify(value);
          } catch {
            return; // not every value has a YAML form (functions, symbols); the loader is not at fault
          }
          if (typeof text === "string") loadText(text);
        },
      ),
      { numRuns: runs },
    ),
  );
});

test("fuzz: a hostile value in any field of a valid file is reported, never accepted as hostile", (t) => {
  counted(t, "field mutations", (count) =>
    fc.assert(
      fc.property(
        validConfig.chain((config) => {
          const document = configToDocument(config);
          const paths = pathsOf(document);
          return fc.tuple(fc.constant(document), fc.constantFrom(...paths), hostileValue);
        }),
        ([document, path, value]) => {
          count();
          const mutated = setAt(document, path, value);
          loadText(stringify(mutated));
          checkResult(validateConfigObject(mutated), false);
        },
      ),
      { numRuns: runs },
    ),
  );
});

test("fuzz: text mutations of a valid file never throw and never let hostile values through", (t) => {
  counted(t, "text mutations", (count) =>
    fc.assert(
      fc.property(
        validConfig.map(configToYaml),
        fc.array(
          fc.record({
            at: fc.nat(),
            kind: fc.constantFrom("insert", "delete", "replace-line", "duplicate-line"),
            fragment: fc.oneof(hostileFragment, hostileString),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (text, mutations) => {
          count();
          let mutated = text;
          for (const m of mutations) {
            const at = mutated.length === 0 ? 0 : m.at % mutated.length;
            const lines = mutated.split("\n");
            const line = lines.length === 0 ? 0 : m.at % lines.length;
            if (m.kind === "insert") mutated = mutated.slice(0, at) + m.fragment + mutated.slice(at);
            else if (m.kind === "delete") mutated = mutated.slice(0, at) + mutated.slice(at + 1);
            else if (m.kind === "replace-line") {
              lines[line] = (lines[line] ?? "").replace(/:\s.*$/, `: ${m.fragment}`);
              mutated = lines.join("\n");
            } else {
              lines.splice(line, 0, lines[line] ?? "");
              mutated = lines.join("\n");
            }
          }
          loadText(mutated);
        },
      ),
      { numRuns: runs },
    ),
  );
});

test("fuzz: deep and circular objects from a custom resource do not hang or throw", () => {
  const circular: Record<string, unknown> = { networks: [] };
  (circular["networks"] as unknown[]).push(circular);
  checkResult(validateConfigObject(circular), false);
  let deep: unknown = "x";
  for (let i = 0; i < 10_000; i++) deep = [deep];
  checkResult(validateConfigObject({ networks: deep }), false);
  checkResult(validateConfigObject(JSON.parse('{"__proto__": {"networks": []}}')), false);
});
