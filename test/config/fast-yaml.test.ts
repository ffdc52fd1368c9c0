// The fast YAML reader (src/config/fast-yaml.ts) against the full loader: whenever it gives a value,
// the full loader read the text without a problem and made the same value of it; it accepts the
// styles configuration files are written in; and it gives up on everything outside its subset.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { parse as parseYaml } from "yaml";
import { parseYamlSubset } from "../../src/config/fast-yaml.ts";
import { loadConfigOrThrow, parseConfigText, validateConfigObject } from "../../src/config/index.ts";
import { yamlToPlainValue } from "../../src/config/text.ts";
import { loadConfigText } from "../../src/cli/commands/core.ts";
import { readConfigFile } from "../../src/agent/desired-config.ts";
import { configText } from "../../bench/lib.ts";
import { prng } from "../support/prng.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
const examplesDir = join(here, "..", "..", "examples");
const exampleFiles = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"));

/** The property every test here rests on; returns whether the fast reader took the text. */
function checkAgainstFullLoader(text: string): boolean {
  const fast = parseYamlSubset(text);
  if (fast === undefined) return false;
  const slow = yamlToPlainValue(text);
  assert.ok(
    slow.ok,
    `the fast reader took a text the full loader has problems with: ${JSON.stringify(text)}`,
  );
  assert.deepStrictEqual(fast, slow.value, `different values for ${JSON.stringify(text)}`);
  return true;
}

// ---- Documents written at the source level, rendered in random styles -------------------------

type Style = "plain" | "single" | "double";
type Source =
  | { readonly kind: "scalar"; readonly text: string; readonly style: Style }
  | { readonly kind: "map"; readonly entries: readonly (readonly [Source, Source])[] }
  | { readonly kind: "seq"; readonly items: readonly Source[] };

function scalarText(s: Source & { kind: "scalar" }, rnd: () => number): string {
  switch (s.style) {
    case "plain":
      return s.text;
    case "single":
      return `'${s.text.replaceAll("'", "''")}'`;
    case "double": {
      const json = JSON.stringify(s.text);
      // Some of YAML's own escapes too.
      if (rnd() < 0.3) return json.replace(/a/, "\\x61").replace(/\//, "\\/").replace(/ /, "\\ ");
      return json;
    }
  }
}

function spaces(rnd: () => number, min: number, max: number): string {
  return " ".repeat(min + Math.floor(rnd() * (max - min + 1)));
}

function comment(rnd: () => number, text: string): string {
  return rnd() < 0.15 ? `${spaces(rnd, 1, 2)}# ${text}` : "";
}

function isEmptyCollection(node: Source): boolean {
  return (
    (node.kind === "map" && node.entries.length === 0) || (node.kind === "seq" && node.items.length === 0)
  );
}

function renderFlow(node: Source, rnd: () => number): string {
  if (node.kind === "scalar") return scalarText(node, rnd);
  const pad = (): string => (rnd() < 0.3 ? " " : "");
  if (node.kind === "seq") {
    const items = node.items.map((item) => renderFlow(item, rnd));
    return `[${pad()}${items.join(`,${rnd() < 0.8 ? " " : ""}`)}${pad()}]`;
  }
  const entries = node.entries.map(
    ([k, v]) => `${renderFlow(k, rnd)}${rnd() < 0.1 ? " " : ""}: ${renderFlow(v, rnd)}`,
  );
  return `{${pad()}${entries.join(", ")}${pad()}}`;
}

function renderBlock(node: Source, indent: number, rnd: () => number, lines: string[]): void {
  const at = " ".repeat(indent);
  const extras = (): void => {
    if (rnd() < 0.05) lines.push(" ".repeat(Math.floor(rnd() * 4)));
    if (rnd() < 0.05) lines.push(`${" ".repeat(Math.floor(rnd() * (indent + 3)))}# between`);
  };
  if (node.kind === "scalar") {
    lines.push(`${at}${scalarText(node, rnd)}`);
    return;
  }
  if (node.kind === "map") {
    for (const [key, value] of node.entries) {
      extras();
      const head = `${at}${renderFlow(key, rnd)}${rnd() < 0.05 ? " " : ""}:`;
      if (value.kind === "scalar" || isEmptyCollection(value) || rnd() < 0.35) {
        lines.push(`${head}${spaces(rnd, 1, 2)}${renderFlow(value, rnd)}${comment(rnd, "value")}`);
      } else {
        lines.push(`${head}${comment(rnd, "nested")}`);
        const sameIndent = value.kind === "seq" && rnd() < 0.3;
        renderBlock(value, sameIndent ? indent : indent + 1 + Math.floor(rnd() * 4), rnd, lines);
      }
    }
    return;
  }
  for (const item of node.items) {
    extras();
    if (item.kind === "scalar" || isEmptyCollection(item) || rnd() < 0.3) {
      lines.push(`${at}-${spaces(rnd, 1, 2)}${renderFlow(item, rnd)}${comment(rnd, "item")}`);
    } else if (rnd() < 0.7) {
      // Compact: the nested collection starts on the entry's own line.
      const gap = 1 + Math.floor(rnd() * 3);
      const nested: string[] = [];
      renderBlock(item, indent + 1 + gap, rnd, nested);
      const first = nested.findIndex((l) => l.trim() !== "" && !l.trim().startsWith("#"));
      nested[first] = `${at}-${" ".repeat(gap)}${(nested[first] ?? "").trimStart()}`;
      lines.push(...nested);
    } else {
      lines.push(`${at}-${comment(rnd, "entry")}`);
      renderBlock(item, indent + 1 + Math.floor(rnd() * 3), rnd, lines);
    }
  }
}

function renderDocument(node: Source, seed: number): string {
  const rnd = prng(seed);
  const lines: string[] = [];
  if (rnd() < 0.2) lines.push("# a configuration");
  if (rnd() < 0.15) lines.push(rnd() < 0.5 ? "---" : "--- # start");
  if (node.kind === "scalar" || isEmptyCollection(node) || rnd() < 0.1) lines.push(renderFlow(node, rnd));
  else renderBlock(node, rnd() < 0.1 ? 2 : 0, rnd, lines);
  if (rnd() < 0.2) lines.push("", "# the end");
  return lines.join("\n") + (rnd() < 0.9 ? "\n" : "");
}

const TRICKY_TEXT = [
  "0x3fff",
  "1e3",
  ".5",
  "-0",
  "+12",
  "0o17",
  "~",
  "Null",
  "NULL",
  "null",
  "yes",
  "on",
  "True",
  "FALSE",
  "1.2.3.0/24",
  "2001:db8::/64",
  "a:b",
  "a #b",
  "a#b",
  "-a",
  "--x",
  "-",
  "-1",
  "-.inf",
  ".inf",
  ".NaN",
  ".nan",
  "1.",
  "1.0",
  "0.0",
  "1_000",
  "0b11",
  "12:30",
  "a b",
  "a  b",
  "x'y",
  'x"y',
  "#x",
  "é",
  "日本",
  "🙂",
  "a\\b",
  "key: v",
  "[a]",
  "{b}",
  "a,b",
  "a]",
  "*x",
  "&y",
  "!z",
  "|",
  ">",
  "%p",
  "@q",
  "`r",
  "?s",
  ":t",
  "<<",
  "__proto__",
  "constructor",
  "",
  " ",
  " lead",
  "trail ",
  "a\nb",
  "tab\there",
  "\u00a0",
  "\u2028",
  "...",
  "---",
  "0x",
  "0o8",
  "+.5",
  "-.5e-3",
  "1e",
  "1E+2",
  "99999999999999999999",
];
const TRICKY_KEYS = [
  "name",
  "addresses",
  "interface",
  "gateway",
  "marks",
  "a",
  "b",
  "__proto__",
  "1",
  "true",
  "null",
  "~",
  "a b",
  "x:y",
  "<<",
  "k-1",
  "0x10",
  "",
  "é",
  "-k",
  "a#b",
  "key: v",
  "-",
  ".",
  "-1x",
  "a'b",
];
const SAFE_TEXT = [
  "n0",
  "eth0",
  "ext0.100",
  "kube-proxy",
  "1.2.3.0/24",
  "100.64.0.1",
  "2001:db8::/64",
  "fd00::1",
  "0x3fff",
  "0xff",
  "1e3",
  ".5",
  "-0",
  "+12",
  "0o17",
  "~",
  "Null",
  "yes",
  "on",
  "a:b",
  "-a",
  "true",
  "12",
  "3.14",
  "a b",
  "x#y",
  "é",
  "🙂",
  "connmark",
  "/var/lib/symroute",
  ".inf",
  "-.inf",
  ".nan",
];
const SAFE_QUOTED = [...SAFE_TEXT, "", "a #b", "key: v", "it's", 'say "hi"', "[x]", "{y}", "a,b"];
const SAFE_KEYS = ["name", "addresses", "interface", "gateway", "a", "b-c", "__proto__", "x y", "k1"];

function sourceArbitrary(
  texts: fc.Arbitrary<string>,
  keys: fc.Arbitrary<string>,
  quoted: fc.Arbitrary<string>,
) {
  const style = fc.constantFrom<Style>("plain", "plain", "plain", "single", "double");
  const scalar = fc.oneof(
    fc.record({ kind: fc.constant("scalar" as const), text: texts, style }),
    fc.record({
      kind: fc.constant("scalar" as const),
      text: quoted,
      style: fc.constantFrom<Style>("single", "double"),
    }),
  );
  const key = fc.record({
    kind: fc.constant("scalar" as const),
    text: keys,
    style: fc.constantFrom<Style>("plain", "plain", "plain", "single", "double"),
  });
  return fc.letrec<{ node: Source; map: Source; seq: Source }>((tie) => ({
    node: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, tie("map"), tie("seq")),
    map: fc.record({
      kind: fc.constant("map" as const),
      entries: fc.uniqueArray(fc.tuple(key, tie("node")), {
        maxLength: 4,
        selector: ([k]) => (k.kind === "scalar" ? k.text : ""),
      }),
    }),
    seq: fc.record({ kind: fc.constant("seq" as const), items: fc.array(tie("node"), { maxLength: 4 }) }),
  }));
}

const pick = (pool: readonly string[]): fc.Arbitrary<string> => fc.constantFrom(...pool);
const tricky = sourceArbitrary(pick(TRICKY_TEXT), pick(TRICKY_KEYS), pick(TRICKY_TEXT));
const safe = sourceArbitrary(pick(SAFE_TEXT), pick(SAFE_KEYS), pick(SAFE_QUOTED));
/** Scalars and keys made of random YAML-ish characters. */
const TOKEN_CHARS = [..."ab0x1e.-+:#'\" []{},~&*!|>%@?`\\/é"];
const token = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), maxLength: 6 });
const randomTokens = sourceArbitrary(token, token, fc.string({ maxLength: 6 }));

const seedArb = fc.integer();

test("tricky documents in random styles: whenever the fast reader answers, it agrees with yaml", () => {
  let accepted = 0;
  fc.assert(
    fc.property(tricky.node, seedArb, (node, seed) => {
      if (checkAgainstFullLoader(renderDocument(node, seed))) accepted++;
    }),
    { numRuns: 4000 },
  );
  // The property means little if the reader gave up on almost everything.
  assert.ok(accepted > 400, `the fast reader took only ${accepted} of 4000 documents`);
});

test("documents of random tokens: whenever the fast reader answers, it agrees with yaml", () => {
  fc.assert(
    fc.property(randomTokens.node, seedArb, (node, seed) => {
      checkAgainstFullLoader(renderDocument(node, seed));
    }),
    { numRuns: 3000 },
  );
});

test("documents in the supported styles are all taken, with yaml's value", () => {
  fc.assert(
    fc.property(
      fc.oneof(safe.map, safe.seq).filter((n) => !isEmptyCollection(n)),
      seedArb,
      (node, seed) => {
        const text = renderDocument(node, seed);
        assert.ok(checkAgainstFullLoader(text), `the fast reader gave up on ${JSON.stringify(text)}`);
      },
    ),
    { numRuns: 2000 },
  );
});

// Flow collections of short words (A-Z a-z 0-9 _ . / + -) next to every kind of neighbour: where a
// plain scalar ends in flow context is where a subset reader most easily goes wrong.
const FLOW_WORD = fc.string({ unit: fc.constantFrom(..."aZn09_./+-"), minLength: 1, maxLength: 5 });
const FLOW_TAIL = fc.constantFrom(
  "",
  "",
  "",
  " ",
  ":",
  ":x",
  " x",
  " #c",
  "#",
  "~",
  "-",
  "[",
  "{",
  "'q'",
  "\n",
);
const FLOW_SEPARATOR = fc.constantFrom(", ", ",", " , ", ",,", " ");
const flowItem = fc.tuple(FLOW_WORD, FLOW_TAIL).map(([word, tail]) => word + tail);

test("flow words next to any neighbour: whenever the fast reader answers, it agrees with yaml", () => {
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.constantFrom("", "k: ", "- "),
      fc.boolean(),
      fc.array(fc.tuple(flowItem, flowItem), { minLength: 1, maxLength: 4 }),
      FLOW_SEPARATOR,
      fc.constantFrom("", "", " ", " # c", "]", "}", ",", " x"),
      (lead, mapping, items, separator, after) => {
        const body = items.map(([a, b]) => (mapping ? `${a}: ${b}` : a)).join(separator);
        const text = `${lead}${mapping ? "{" : "["}${body}${mapping ? "}" : "]"}${after}`;
        if (checkAgainstFullLoader(text)) accepted++;
      },
    ),
    { numRuns: 4000 },
  );
  assert.ok(accepted > 400, `the fast reader took only ${accepted} of 4000 flow texts`);
});

const YAML_CHARS = [..."ab0x.-: #'\"[]{},\n\n  \t\\&*!|>%@?~1e/é"];

test("arbitrary strings: whenever the fast reader answers, it agrees with yaml", () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...YAML_CHARS), maxLength: 40 }), (text) => {
      checkAgainstFullLoader(text);
    }),
    { numRuns: 4000 },
  );
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 30 }), (text) => {
      checkAgainstFullLoader(`a: ${text}\n`);
      checkAgainstFullLoader(`- [${text}]\n`);
    }),
    { numRuns: 1000 },
  );
});

const MUTATION_CHARS = [
  ":",
  "#",
  "'",
  '"',
  "\t",
  "\n",
  " ",
  "-",
  "[",
  "]",
  "{",
  "}",
  ",",
  "&",
  "*",
  "|",
  "\\",
];

test("mutated valid documents: whenever the fast reader answers, it agrees with yaml", () => {
  const mutation = fc.record({
    at: fc.nat(),
    remove: fc.nat({ max: 2 }),
    insert: fc.array(fc.constantFrom(...MUTATION_CHARS), { maxLength: 2 }),
  });
  let accepted = 0;
  fc.assert(
    fc.property(
      safe.map,
      seedArb,
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (node, seed, edits) => {
        let text = renderDocument(node, seed);
        for (const { at, remove, insert } of edits) {
          const i = text.length === 0 ? 0 : at % text.length;
          text = text.slice(0, i) + insert.join("") + text.slice(i + remove);
        }
        if (checkAgainstFullLoader(text)) accepted++;
      },
    ),
    { numRuns: 4000 },
  );
  assert.ok(accepted > 200, `the fast reader took only ${accepted} mutated documents`);
});

// ---- What it accepts, exactly ------------------------------------------------------------------

test("every file in examples/ and the benchmark shape are taken, with yaml's value", () => {
  for (const file of exampleFiles) {
    const text = readFileSync(join(examplesDir, file), "utf8");
    assert.ok(checkAgainstFullLoader(text), `the fast reader gave up on examples/${file}`);
  }
  for (const networks of [10, 1000]) {
    assert.ok(checkAgainstFullLoader(configText(networks)), `gave up on the ${networks}-network bench file`);
  }
});

test("scalars resolve as in YAML 1.2's core schema", () => {
  const value = parseYamlSubset(
    [
      "hex: 0x3fff",
      "oct: 0o17",
      "neg0: -0",
      "plus: +12",
      "exp: 1e3",
      "half: .5",
      "inf: -.inf",
      "nan: .NaN",
      "nul: ~",
      "nul2: Null",
      "empty:",
      "yes: yes",
      "bool: FALSE",
      "v6: [2001:db8::/64, a:b]",
      "sq: 'it''s # not a comment'",
      'dq: "tab\\tnew\\nline \\u00e9 \\x41 \\/"',
      "hash: a#b # a comment",
      "__proto__: own",
    ].join("\n"),
  ) as Record<string, unknown>;
  assert.ok(value !== undefined);
  assert.equal(value["hex"], 0x3fff);
  assert.equal(value["oct"], 15);
  assert.ok(Object.is(value["neg0"], -0));
  assert.equal(value["plus"], 12);
  assert.equal(value["exp"], 1000);
  assert.equal(value["half"], 0.5);
  assert.equal(value["inf"], Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN(value["nan"]));
  assert.equal(value["nul"], null);
  assert.equal(value["nul2"], null);
  assert.equal(value["empty"], null);
  assert.equal(value["yes"], "yes");
  assert.equal(value["bool"], false);
  assert.deepEqual(value["v6"], ["2001:db8::/64", "a:b"]);
  assert.equal(value["sq"], "it's # not a comment");
  assert.equal(value["dq"], "tab\tnew\nline é A /");
  assert.equal(value["hash"], "a#b");
  assert.ok(Object.prototype.hasOwnProperty.call(value, "__proto__"));
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
});

test("block styles: compact entries, sequences at their key's indentation, comments anywhere", () => {
  const text = [
    "# leading comment",
    "---",
    "networks:",
    "- name: a # trailing",
    "  addresses:",
    "  - 1.2.3.0/24",
    "# a comment less indented than the block",
    "  interface: eth0",
    "-",
    "  name: b",
    "- - nested",
    "  - seq",
    "- ",
    "top: { a: [1, {b: c}], 'q': \"d\" }",
    "",
  ].join("\n");
  assert.ok(checkAgainstFullLoader(text));
  assert.deepStrictEqual(parseYamlSubset(text), {
    networks: [
      { name: "a", addresses: ["1.2.3.0/24"], interface: "eth0" },
      { name: "b" },
      ["nested", "seq"],
      null,
    ],
    top: { a: [1, { b: "c" }], q: "d" },
  });
});

test("double-quoted escapes decode as yaml decodes them", () => {
  const escapes = [
    "\\0",
    "\\a",
    "\\b",
    "\\e",
    "\\f",
    "\\n",
    "\\r",
    "\\t",
    "\\v",
    "\\N",
    "\\_",
    "\\L",
    "\\P",
    "\\ ",
    '\\"',
    "\\/",
    "\\\\",
    "\\x41",
    "\\xe9",
    "\\u00e9",
    "\\u2028",
    "\\ud83d",
    "\\U0001F642",
    "\\U00110000",
    "\\x4g",
    "\\u12",
    "\\q",
    "\\'",
    "\\",
  ];
  let accepted = 0;
  for (const e of escapes) {
    for (const text of [`a: "x${e}y"\n`, `- ["${e}", "${e}${e}"]\n`, `"k${e}": 1\n`]) {
      if (checkAgainstFullLoader(text)) accepted++;
    }
  }
  assert.ok(accepted >= 60, `only ${accepted} escape cases taken`);
});

// ---- What it gives up on -----------------------------------------------------------------------

const OUTSIDE_THE_SUBSET: readonly (readonly [string, string])[] = [
  ["an empty text", ""],
  ["only comments", "# nothing\n"],
  ["a top-level scalar", "hello\n"],
  ["anchors and aliases", "a: &x 1\nb: *x\n"],
  ["an alias alone", "a: *x\n"],
  ["tags", "a: !!str 1\n"],
  ["a local tag", "a: !thing 1\n"],
  ["a literal block scalar", "a: |\n  text\n"],
  ["a folded block scalar", "a: >\n  text\n"],
  ["duplicate keys", "a: 1\na: 2\n"],
  ["duplicate keys, one quoted", "a: 1\n'a': 2\n"],
  ["duplicate keys in flow", "m: {a: 1, a: 2}\n"],
  ["a tab in the indentation", "a:\n\t- x\n"],
  ["a tab after a key", "a:\t1\n"],
  ["a carriage return", "a: 1\r\n"],
  ["a byte order mark", "\ufeffa: 1\n"],
  ["a multi-line plain scalar", "a: one\n  two\n"],
  ["a multi-line single-quoted scalar", "a: 'one\n  two'\n"],
  ["a multi-line double-quoted scalar", 'a: "one\n  two"\n'],
  ["a multi-line flow collection", "a: [x,\n  y]\n"],
  ["a directive", "%YAML 1.2\n---\na: 1\n"],
  ["two documents", "a: 1\n---\nb: 2\n"],
  ["a document end marker", "a: 1\n...\n"],
  ["content after ---", "--- {a: 1}\n"],
  ["a complex key", "? a\n: b\n"],
  ["a merge key", "base: {a: 1}\n<<: {b: 2}\n"],
  ["a key that resolves to a number", "1: a\n"],
  ["a key that resolves to a boolean", "true: a\n"],
  ["a key that resolves to null", "~: a\n"],
  ["a flow collection as a key", "[a]: b\n"],
  ["a compact mapping after a key", "a: b: c\n"],
  ["a sequence entry after a key on its line", "a: - b\n"],
  ["a trailing comma", "a: [b, c,]\n"],
  ["an empty flow entry", "a: [b, , c]\n"],
  ["a pair inside a flow sequence", "a: [b: c]\n"],
  ["a flow key without a value", "a: {b}\n"],
  ["a flow pair without a space", "a: {b:c}\n"],
  ["a comment inside a flow collection", "a: [b #c\n]\n"],
  ["a comment right after a quoted scalar", 'a: "b"#c\n'],
  ["text after a quoted scalar", "a: 'b' c\n"],
  ["text after a flow collection", "a: [b] c\n"],
  ["an unknown escape", 'a: "\\q"\n'],
  ["a short hex escape", 'a: "\\x4"\n'],
  ["a reserved indicator", "a: @b\n"],
  ["a plain scalar starting with %", "a: %b\n"],
  ["a wrongly indented key", "a:\n    b: 1\n  c: 2\n"],
  ["a more indented line after a value", "a: 1\n  b: 2\n"],
  ["a sequence entry among keys", "a: 1\n- b\n"],
  ["a scalar on its own line under a key", "a:\n  b\n"],
  ["a flow collection on its own line under a key", "a:\n  [b]\n"],
  ["a no-break space", "a: b\u00a0c\n"],
  ["a line separator", "a: b\u2028c\n"],
  ["a lone surrogate", "a: b\ud800c\n"],
];

for (const [what, text] of OUTSIDE_THE_SUBSET) {
  test(`gives up on ${what}`, () => {
    assert.equal(parseYamlSubset(text), undefined);
  });
}

test("gives up beyond the full loader's bounds (depth and size), takes what is below them", () => {
  const nested = (levels: number): string => `${"[".repeat(levels)}x${"]".repeat(levels)}\n`;
  assert.equal(parseYamlSubset(nested(70)), undefined);
  assert.ok(checkAgainstFullLoader(nested(50)));
  const blockNested = (levels: number): string =>
    Array.from({ length: levels }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n") + " x\n";
  assert.equal(parseYamlSubset(blockNested(70)), undefined);
  assert.ok(checkAgainstFullLoader(blockNested(50)));
  const wide = `a: [${Array.from({ length: 100_001 }, () => "1").join(", ")}]\n`;
  assert.equal(parseYamlSubset(wide), undefined);
  const longKey = `${"k".repeat(1100)}: 1\n`;
  assert.equal(parseYamlSubset(longKey), undefined);
});

// ---- The loaders that use it -------------------------------------------------------------------

test("loadConfigText gives the full loader's Config for the examples and the benchmark shape", async () => {
  const texts: [string, string][] = exampleFiles.map((f) => [f, readFileSync(join(examplesDir, f), "utf8")]);
  texts.push(["bench-10", configText(10)], ["bench-1000", configText(1000)]);
  for (const [name, text] of texts) {
    const plain = parseYamlSubset(text);
    assert.ok(plain !== undefined && validateConfigObject(plain).ok, `${name} does not take the fast path`);
    assert.deepStrictEqual(await loadConfigText(text, name), loadConfigOrThrow(text, name), name);
  }
});

test("loadConfigText takes the full loader for YAML outside the subset", async () => {
  const text = [
    "networks:",
    "  - { name: n0, addresses: [1.2.3.0/24], interface: &link eth0 }",
    "  - { name: n1, addresses: [1.2.4.0/24], interface: *link }",
    "",
  ].join("\n");
  assert.equal(parseYamlSubset(text), undefined);
  assert.deepStrictEqual(await loadConfigText(text, "anchors.yaml"), loadConfigOrThrow(text, "anchors.yaml"));
});

test("loadConfigText still reports problems with the full loader's positions", async () => {
  const text = "networks:\n  - { name: n0, addresses: [300.1.2.3/24], interface: eth0 }\n";
  assert.ok(parseYamlSubset(text) !== undefined);
  await assert.rejects(loadConfigText(text, "bad.yaml"), (error: Error & { details?: string[] }) => {
    assert.deepEqual(error.message, "bad.yaml: 1 problem in the configuration");
    assert.match(String(error.details?.[0]), /^bad\.yaml:2:\d+/);
    return true;
  });
});

test("the agent's readConfigFile gives the same config and raw object on either path", () => {
  for (const file of exampleFiles) {
    const text = readFileSync(join(examplesDir, file), "utf8");
    const result = readConfigFile(text, file);
    assert.ok(result.ok);
    const slow = parseConfigText(text);
    assert.ok(slow.ok);
    assert.deepStrictEqual(result.config, slow.config);
    assert.deepStrictEqual(result.raw, parseYaml(text));
  }
  const bad = readConfigFile("networks: [{ name: n0 }]\n", "bad.yaml");
  assert.ok(!bad.ok);
  assert.match(bad.problems[0] ?? "", /^bad\.yaml:1:\d+/);
});
