// readPlainEntry (src/config/plain-entry.ts) against the yaml package: for random `networks` entries
// written in flow, JSON and block style with tricky tokens (numbers in every core-schema form, null
// and boolean words, IPv6 colons, quotes, comments) and random damage (characters inserted, deleted
// or swapped), whenever the plain reader answers, yaml and the Converter give the same value (own
// keys in the same order) and the same count of values. It must answer the common spellings.
// Runs per property: SYMROUTE_FUZZ_RUNS (default 300).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { readEntryWithYaml } from "../../src/config/incremental.ts";
import { readPlainEntry } from "../../src/config/plain-entry.ts";

const runs = Number(process.env["SYMROUTE_FUZZ_RUNS"] ?? "300");

/** The same value, the same key order at every level, the same prototype-free own properties. */
function sameValue(a: unknown, b: unknown): void {
  assert.deepStrictEqual(a, b);
  assert.equal(JSON.stringify(a), JSON.stringify(b));
}

function agrees(text: string): boolean {
  const plain = readPlainEntry(text);
  if (plain === undefined) return false;
  const yaml = readEntryWithYaml(text);
  assert.ok(yaml !== undefined, `the plain reader answered, yaml refused:\n${text}`);
  sameValue(plain.value, yaml.value);
  assert.equal(plain.nodes, yaml.nodes, `value counts differ for:\n${text}`);
  return true;
}

/** Tokens it reads (values yaml reads as text, small integers, null and booleans). */
const readable = fc.constantFrom(
  "ext0",
  "eth0.100",
  "n1",
  "1.2.3.0/24",
  "1.2.3.1",
  "2001:db8::/64",
  "fe80::1",
  "a:b",
  "0",
  "7",
  "100",
  "null",
  "true",
  "False",
  "__proto__",
  '"quoted"',
  '"q: x"',
  '""',
  "''",
  "'single'",
);
/** Tokens it should leave to yaml, or read the same. */
const tricky = fc.constantFrom(
  "2001:db8::",
  "a:",
  ":a",
  "0100",
  "-1",
  "+1",
  "1e3",
  "1.5",
  ".5",
  "1.",
  "0x3fff",
  "0o17",
  ".inf",
  "-.inf",
  ".nan",
  "null",
  "Null",
  "NULL",
  "~",
  "true",
  "True",
  "TRUE",
  "false",
  "yes",
  "on",
  "__proto__",
  "a#b",
  "a b",
  '"quoted"',
  '"q: x"',
  '""',
  "''",
  "'single'",
  "'it''s'",
  '"esc\\n"',
  "&anchor x",
  "*alias",
  "!tag x",
  "|",
  "-",
  "- a",
  "[]",
  "{}",
  "99999999999999999999",
);
const tokens = fc.oneof({ arbitrary: readable, weight: 6 }, { arbitrary: tricky, weight: 1 });
const keys = fc.oneof(
  {
    arbitrary: fc.constantFrom("name", "addresses", "interface", "gateway", "table", "vlan", "id", "parent"),
    weight: 8,
  },
  { arbitrary: fc.constantFrom("__proto__", "true", "null", "a-b", "_x", "1", '"q"'), weight: 1 },
);

const scalarText = tokens;
const flowText: fc.Arbitrary<string> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, scalarText, tie("seq"), tie("map")),
  seq: fc
    .tuple(
      fc.array(tie("value") as fc.Arbitrary<string>, { maxLength: 4 }),
      fc.constantFrom(", ", ",", " , "),
    )
    .map(([items, sep]) => `[${items.join(sep)}]`),
  map: fc
    .tuple(
      fc.array(fc.tuple(keys, tie("value") as fc.Arbitrary<string>), { maxLength: 4 }),
      fc.constantFrom(": ", ":", " : "),
      fc.constantFrom(", ", ","),
      fc.boolean(),
    )
    .map(([pairs, colon, sep, padded]) => {
      const body = pairs.map(([k, v]) => `${k}${colon}${v}`).join(sep);
      return padded ? `{ ${body} }` : `{${body}}`;
    }),
})).value as fc.Arbitrary<string>;

const comment = fc.constantFrom("", "", "", " # a comment", "  #x", "#glued");

/** A flow-mapping entry on its `-` line, maybe with comment and blank lines after it. */
const flowEntry = fc
  .tuple(
    fc.constantFrom("  ", "", "    "),
    flowText,
    comment,
    fc.array(fc.constantFrom("", "# c", "  # c", "      # deep", "x"), { maxLength: 2 }),
  )
  .map(([indent, body, tail, after]) => `${indent}- ${body}${tail}\n${after.map((l) => `${l}\n`).join("")}`);

/** A block-mapping entry, one value per line. */
const blockEntry = fc
  .tuple(
    fc.constantFrom("  ", "", "    "),
    fc.constantFrom(1, 1, 3),
    fc.array(
      fc.tuple(keys, fc.oneof({ arbitrary: scalarText, weight: 4 }, flowText, fc.constant("")), comment),
      {
        minLength: 1,
        maxLength: 5,
      },
    ),
    fc.array(fc.tuple(fc.nat({ max: 5 }), fc.constantFrom("", "# c", "      # deep", "     x")), {
      maxLength: 2,
    }),
  )
  .map(([indent, gap, pairs, extras]) => {
    const column = indent.length + 1 + gap;
    const lines = pairs.map(([k, v, tail], i) => {
      const lead = i === 0 ? `${indent}-${" ".repeat(gap)}` : " ".repeat(column);
      return `${lead}${k}: ${v}${tail}`.replace(/ +$/, (s) => (v === "" && tail === "" ? "" : s));
    });
    for (const [at, line] of extras) lines.splice(Math.min(at + 1, lines.length), 0, line);
    return `${lines.join("\n")}\n`;
  });

/** Damage: a character inserted, deleted or replaced somewhere. */
const damaged = (entry: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc
    .tuple(
      entry,
      fc.nat(),
      fc.constantFrom("delete", "insert", "replace"),
      fc.constantFrom(..." :,#-[]{}'\"\n&*!|>?%@`\ta0."),
    )
    .map(([text, at, how, c]) => {
      const i = text.length === 0 ? 0 : at % text.length;
      if (how === "delete") return text.slice(0, i) + text.slice(i + 1);
      if (how === "insert") return text.slice(0, i) + c + text.slice(i);
      return text.slice(0, i) + c + text.slice(i + 1);
    });

test("the plain reader answers as yaml does, or not at all", () => {
  let answered = 0;
  fc.assert(
    fc.property(fc.oneof(flowEntry, blockEntry, damaged(flowEntry), damaged(blockEntry)), (text) => {
      if (agrees(text)) answered++;
    }),
    { numRuns: runs * 4 },
  );
  // A reader that never answers would pass the comparison: it must take a fair share.
  assert.ok(answered > runs / 4, `the plain reader answered only ${answered} of ${runs * 4}`);
});

test("the plain reader reads the common spellings", () => {
  const common = [
    "  - { name: n0, addresses: [100.64.0.0/24], interface: ext0, gateway: 100.64.0.1 }\n",
    '  - {"name":"n0","addresses":["1.2.3.0/24","2001:db8::/64"],"interface":"ext0","vlan":{"parent":"eth0","id":100}}\n',
    [
      "  - name: public # lowercase letters, digits, '-'; unique",
      "    addresses: [1.2.3.0/24] # the MetalLB pool(s)",
      "    interface: ext0",
      "",
      "    gateway: 1.2.3.1 # optional",
      "  # the next network",
      "",
    ].join("\n"),
    "- name: v\n  addresses: [2001:db8::/64, 1.2.3.4]\n  vlan: { parent: eth0, id: 100 }\n  table: 20001\n",
  ];
  for (const text of common) assert.ok(agrees(text), `not read by the plain reader:\n${text}`);
});

test("the plain reader leaves what it is not sure of to yaml", () => {
  const unsure = [
    "  - name: a\n    addresses:\n      - 1.2.3.0/24\n", // a nested block sequence
    "  - name: &n a\n", // an anchor
    "  - name: 0x10\n", // a hexadecimal number
    "  - name: a\n      b\n", // a multi-line scalar
    "  - name: a\n    name: b\n", // a duplicate key
    '  - name: "a\\tb"\n', // an escape
    "  - { name: a, }\n", // a trailing comma
    "  - name: a\r\n", // CRLF
  ];
  for (const text of unsure) assert.equal(readPlainEntry(text), undefined, text);
});
