// parseConfigTextReusing (src/config/incremental.ts) against parseConfigText: for random configurations
// in every spelling the splitter meets (block and flow entries, compact sequences, any key order,
// comments) and random edits (networks added, removed, changed, reordered; top-level fields changed;
// comments, blank lines, lines deleted or duplicated, broken YAML), the incremental read of an edited
// text, given the memo of the text before, equals the whole read: the Config, the plain value, or
// every issue with its line and column. Runs per property: SYMROUTE_FUZZ_RUNS (default 300).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import { parseConfigText, validateConfigObject } from "../../src/config/index.ts";
import {
  type ConfigObjectMemo,
  type ConfigTextMemo,
  parseConfigTextReusing,
  splitNetworks,
  validateConfigObjectReusing,
} from "../../src/config/incremental.ts";
import { configToDocument } from "./serialize.ts";
import { hostileFragment, hostileValue, validConfig } from "./arbitraries.ts";

const runs = Number(process.env["SYMROUTE_FUZZ_RUNS"] ?? "300");

type Document = Record<string, unknown> & { networks: Record<string, unknown>[] };

/** How a document is written out: the shapes a hand-written or generated file has. */
interface Spelling {
  readonly style: "block" | "compact" | "flow-entries" | "json";
  /** Where `networks` goes among the top-level keys. */
  readonly networksAt: number;
  /** Comment lines after these entries (by index), at this indentation. */
  readonly comments: readonly { readonly after: number; readonly indent: number }[];
  readonly crlf: boolean;
}

const spelling: fc.Arbitrary<Spelling> = fc.record({
  style: fc.constantFrom("block", "block", "compact", "flow-entries", "json"),
  networksAt: fc.nat({ max: 10 }),
  comments: fc.array(fc.record({ after: fc.nat({ max: 6 }), indent: fc.nat({ max: 8 }) }), { maxLength: 3 }),
  crlf: fc.boolean(),
});

function write(doc: Document, how: Spelling): string {
  const { networks, ...rest } = doc;
  const keys = Object.keys(rest);
  keys.splice(Math.min(how.networksAt, keys.length), 0, "networks");
  const ordered: Record<string, unknown> = {};
  for (const key of keys) ordered[key] = key === "networks" ? networks : rest[key];
  if (how.style === "json") return JSON.stringify(ordered, null, 2);
  const entries = networks.map((n, i) => {
    const text =
      how.style === "flow-entries"
        ? `  - ${JSON.stringify(n)}\n`
        : stringify([n], { lineWidth: 0 })
            .split("\n")
            .map((line) => (line === "" || how.style === "compact" ? line : `  ${line}`))
            .join("\n");
    const comments = how.comments
      .filter((c) => c.after === i)
      .map((c) => `${" ".repeat(c.indent)}# after ${i}\n`)
      .join("");
    return text + comments;
  });
  const parts = keys.map((key) =>
    key === "networks"
      ? networks.length === 0
        ? "networks: []\n"
        : `networks:\n${entries.join("")}`
      : stringify({ [key]: rest[key] }, { lineWidth: 0 }),
  );
  const text = parts.join("");
  return how.crlf ? text.replaceAll("\n", "\r\n") : text;
}

/** An edit of the document (then written out the same way). */
const documentEdit = fc.oneof(
  { arbitrary: fc.constant((doc: Document): Document => doc), weight: 4 },
  fc.nat().map((i) => (doc: Document): Document => {
    // A copy of an entry under a new name: usually an overlap, sometimes valid.
    const from = doc.networks[i % Math.max(1, doc.networks.length)];
    if (from === undefined) return doc;
    const copy = { ...from, name: `added-${i % 97}`, addresses: [`198.18.${i % 250}.0/24`] };
    return { ...doc, networks: [...doc.networks.slice(0, i % 3), copy, ...doc.networks.slice(i % 3)] };
  }),
  fc.nat().map((i) => (doc: Document): Document => ({
    ...doc,
    networks: doc.networks.filter((_, k) => k !== i % Math.max(1, doc.networks.length)),
  })),
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom("name", "addresses", "interface", "gateway", "method", "table", "x"),
      hostileValue,
    )
    .map(([i, key, value]) => (doc: Document): Document => ({
      ...doc,
      networks: doc.networks.map((n, k) => (k === i % doc.networks.length ? { ...n, [key]: value } : n)),
    })),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (doc: Document): Document => {
    const networks = [...doc.networks];
    const n = networks.length;
    if (n < 2) return doc;
    const [x, y] = [networks[a % n], networks[b % n]] as [Record<string, unknown>, Record<string, unknown>];
    networks[a % n] = y;
    networks[b % n] = x;
    return { ...doc, networks };
  }),
  fc
    .tuple(
      fc.constantFrom("podCIDRs", "firewall", "kubeProxyMode", "tables", "marks", "routeProtocol", "other"),
      hostileValue,
    )
    .map(([key, value]) => (doc: Document): Document => ({ ...doc, [key]: value })),
  fc.constant((doc: Document): Document => ({
    ...doc,
    firewall: doc["firewall"] === "auto" ? "nftables" : "auto",
  })),
);

/** An edit of the text itself: comments, blank lines, lines lost or doubled, broken YAML. */
const textEdit = fc.oneof(
  { arbitrary: fc.constant((text: string): string => text), weight: 5 },
  fc
    .tuple(fc.nat(), fc.nat({ max: 8 }), fc.boolean())
    .map(([at, indent, blank]) => (text: string): string => {
      const lines = text.split("\n");
      lines.splice(at % (lines.length + 1), 0, blank ? " ".repeat(indent) : `${" ".repeat(indent)}# edited`);
      return lines.join("\n");
    }),
  fc.nat().map((at) => (text: string): string => {
    const lines = text.split("\n");
    lines.splice(at % lines.length, 1);
    return lines.join("\n");
  }),
  fc.nat().map((at) => (text: string): string => {
    const lines = text.split("\n");
    const i = at % lines.length;
    lines.splice(i, 0, lines[i] ?? "");
    return lines.join("\n");
  }),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (text: string): string => {
    const lines = text.split("\n");
    const [i, j] = [a % lines.length, b % lines.length];
    [lines[i], lines[j]] = [lines[j] ?? "", lines[i] ?? ""];
    return lines.join("\n");
  }),
  fc.tuple(fc.nat(), hostileFragment).map(([at, fragment]) => (text: string): string => {
    const i = at % (text.length + 1);
    return text.slice(0, i) + fragment + text.slice(i);
  }),
  fc.tuple(fc.nat(), fc.nat({ max: 3 })).map(([at, length]) => (text: string): string => {
    const i = at % (text.length + 1);
    return text.slice(0, i) + text.slice(i + length);
  }),
);

const edit = fc.record({ document: documentEdit, text: textEdit });

/** Reads `text` both ways and compares; the memo for the next read. */
function readBothWays(
  text: string,
  memo: ConfigTextMemo | undefined,
  stats: { reused: number; readsReusing: number },
): ConfigTextMemo {
  const incremental = parseConfigTextReusing(text, memo);
  const whole = parseConfigText(text);
  assert.deepEqual(incremental.result, whole, `text:\n${text}`);
  stats.reused += incremental.reused ?? 0;
  if (incremental.reused !== undefined && incremental.reused > 0) stats.readsReusing++;
  return incremental.memo;
}

test("an edited text read with the memo of the text before reads as the whole text does", (t) => {
  const stats = { reused: 0, readsReusing: 0, cases: 0 };
  fc.assert(
    fc.property(
      validConfig,
      spelling,
      fc.array(edit, { minLength: 1, maxLength: 3 }),
      (config, how, edits) => {
        stats.cases++;
        let doc = configToDocument(config) as Document;
        let text = write(doc, how);
        let memo = readBothWays(text, undefined, stats);
        for (const step of edits) {
          doc = step.document(doc);
          text = step.text(write(doc, how));
          memo = readBothWays(text, memo, stats);
        }
      },
    ),
    { numRuns: runs },
  );
  t.diagnostic(`${stats.cases} cases, ${stats.readsReusing} reads reused ${stats.reused} entries`);
  assert.ok(stats.reused > 0, "no entry was ever reused: the incremental path was not exercised");
});

test("YAML the splitter must not misread: anchors, tags, block scalars, multi-line values, odd indentation", () => {
  const texts = [
    // An alias to an anchor in another entry: only the whole document resolves it.
    "networks:\n  - &a {name: a, addresses: [1.2.3.0/24], interface: e0}\n  - *a\n",
    "networks:\n  - name: a\n    addresses: &p [1.2.3.0/24]\n    interface: e0\n  - name: b\n    addresses: *p\n    interface: e1\n",
    "x: &n a\nnetworks:\n  - {name: *n, addresses: [1.2.3.0/24], interface: e0}\n",
    // Tags, block scalars and multi-line scalars inside an entry.
    "networks:\n  - name: !!str a\n    addresses: [1.2.3.0/24]\n    interface: e0\n",
    "networks:\n  - name: |-\n      a\n    addresses: [1.2.3.0/24]\n    interface: e0\n",
    "networks:\n  - name: >+\n      a\n\n    addresses: [1.2.3.0/24]\n    interface: e0\n",
    'networks:\n  - name: "a\n\n      b"\n    addresses: [1.2.3.0/24]\n    interface: e0\n',
    "networks:\n  - {name: a,\n     addresses: [1.2.3.0/24], interface: e0}\n  - {name: b,\naddresses: [1.2.4.0/24], interface: e0}\n",
    "networks:\n  - name: a\n    addresses:\n    - 1.2.3.0/24\n    interface: e0\n # a comment less indented\n  - name: b\n    addresses: [1.2.4.0/24]\n    interface: e0\n",
    "networks:\n- name: a\n  addresses: [1.2.3.0/24]\n  interface: e0\nfirewall: nftables\n",
    "networks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n   - name: b\n",
    "networks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n\tfirewall: auto\n",
    "networks:\n  -\n    name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n",
    "networks:  # the networks\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\nnetworks:\n  - name: b\n",
    "podCIDRs: [\n networks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n]\n",
    'podCIDRs: "a\nnetworks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n"\n',
    "---\nnetworks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n",
    "%YAML 1.2\n---\nnetworks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n",
    "networks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n    <<: {method: none}\n",
    "\ufeffnetworks:\n  - name: a\n    addresses: [1.2.3.0/24]\n    interface: e0\n",
    // `networks:` at column 0 inside a flow collection: a block sequence is not allowed there.
    "{\nnetworks:\n  - {name: a, addresses: [1.2.3.0/24], interface: e0}\n}\n",
    "{x: 1,\nnetworks:\n  - {name: a, addresses: [1.2.3.0/24], interface: e0}\n}\n",
    "[\nnetworks:\n  - {name: a, addresses: [1.2.3.0/24], interface: e0}\n]\n",
  ];
  for (const text of texts) {
    // Read twice: cold, then with its own memo (every entry reused when the first read was clean).
    const first = parseConfigTextReusing(text);
    assert.deepEqual(first.result, parseConfigText(text), text);
    assert.deepEqual(parseConfigTextReusing(text, first.memo).result, parseConfigText(text), text);
    // And each entry edited by one character, with the memo of the text before.
    for (let i = 0; i < text.length; i++) {
      const edited = text.slice(0, i) + (text[i] === "a" ? "b" : "a") + text.slice(i + 1);
      assert.deepEqual(parseConfigTextReusing(edited, first.memo).result, parseConfigText(edited), edited);
    }
  }
});

test("one network added to 1,000 re-reads only that entry", () => {
  const entry = (i: number): string =>
    `  - { name: n${i}, addresses: [10.${i >> 8}.${i & 255}.0/24], interface: ext0 }\n`;
  const text = (n: number): string =>
    `tables: { from: 20000, to: 29999 }\nnetworks:\n${Array.from({ length: n }, (_, i) => entry(i)).join("")}`;
  const before = parseConfigTextReusing(text(1000));
  assert.equal(before.reused, 0);
  const after = parseConfigTextReusing(text(1001), before.memo);
  assert.equal(after.reused, 1000);
  assert.deepEqual(after.result, parseConfigText(text(1001)));
  assert.equal(splitNetworks(text(3))?.entries.length, 3);
});

/** Values that JSON writes alike but that are not the same value: the memo must tell them apart. */
const lookalike = fc.constantFrom<unknown>(Number.NaN, -0, 0, null, undefined, Infinity, [undefined], {
  toJSON: () => "eth0",
});

test("an object (the cluster's networks merged into the file's) checked with the memo of the last check is checked as without", (t) => {
  let reused = 0;
  fc.assert(
    fc.property(
      validConfig.filter((c) => c.networks.length > 0),
      fc.array(
        fc.record({
          document: documentEdit,
          lookalike: fc.option(
            fc.tuple(fc.nat(), fc.constantFrom("table", "name", "vlan", "gateway", "x"), lookalike),
          ),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      (config, edits) => {
        let doc = configToDocument(config) as Document;
        let memo: ConfigObjectMemo | undefined;
        const check = (value: Document): void => {
          const incremental = validateConfigObjectReusing(value, memo);
          assert.deepEqual(incremental.result, validateConfigObject(value));
          reused += [...incremental.memo.entries.values()].filter((e) =>
            memo === undefined ? false : [...memo.entries.values()].includes(e),
          ).length;
          memo = incremental.memo;
        };
        check(doc);
        for (const step of edits) {
          doc = step.document(doc);
          const odd = step.lookalike;
          if (odd !== null) {
            const [i, key, value] = odd;
            doc = {
              ...doc,
              networks: doc.networks.map((n, k) =>
                k === i % doc.networks.length ? { ...n, [key]: value } : n,
              ),
            };
          }
          check(doc);
        }
      },
    ),
    { numRuns: runs },
  );
  t.diagnostic(`${reused} entries reused`);
  assert.ok(reused > 0, "no entry was ever reused");
});

test("fragments inserted at the start of lines (where the splitter looks) read as the whole text does", (t) => {
  const entry = (i: number): string => `  - {name: n${i}, addresses: [10.0.${i}.0/24], interface: e0}\n`;
  const base =
    `tables: {from: 20000, to: 29999}\nnetworks:\n${entry(0)}${entry(1)}` +
    "  - name: n2\n    addresses:\n      - 10.0.2.0/24\n    interface: e0\nfirewall: auto\n";
  const memo = parseConfigTextReusing(base).memo;
  const fragments = [
    ...[" ", "  ", "\t", "#", " # c", "\n", "\r", "\r\n", "\ufeff", "\u2028", "\u0085", "\u00a0"],
    ...["-", "- ", "? ", ": ", "&a ", "*a", "!!str ", "[", "]", "{", "}", "'", '"', "|", "%", "---", "..."],
    ...["firewall: auto\n", "x: 1\n", "networks:\n", "    method: none\n", "      - 10.7.0.0/24\n"],
    ...["- {name: z, addresses: [10.9.0.0/24], interface: e0}\n", `  ${entry(8).trimStart()}`],
  ];
  let incremental = 0;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(), fc.constantFrom(...fragments), fc.nat({ max: 6 })), {
        minLength: 1,
        maxLength: 3,
      }),
      (edits) => {
        let text = base;
        for (const [at, fragment, column] of edits) {
          const lines = text.split("\n");
          const i = at % lines.length;
          const line = lines[i] ?? "";
          const c = Math.min(column, line.length);
          lines[i] = line.slice(0, c) + fragment + line.slice(c);
          text = lines.join("\n");
        }
        const read = parseConfigTextReusing(text, memo);
        if (read.reused !== undefined) incremental++;
        assert.deepEqual(read.result, parseConfigText(text), JSON.stringify(text));
      },
    ),
    { numRuns: runs * 10 },
  );
  t.diagnostic(`${incremental} texts read incrementally`);
});
