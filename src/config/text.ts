// From configuration text (YAML; JSON is YAML too) to a validated Config with line:col on every issue.
// The YAML tree is converted by hand rather than with toJS(): keys stay plain own properties (a
// `__proto__` key is just an unknown key), tagged values with no JSON meaning (!!binary, timestamps)
// are reported instead of used, alias expansion is bounded, and the position of every value and key
// is recorded on the way so an issue's path maps straight to where it is in the text.

import {
  type Document,
  LineCounter,
  type Node as YamlNode,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
} from "yaml";
import type { ConfigIssue, ConfigPath } from "./issues.ts";
import { UnsupportedValue, describe, escapeUnprintable, quoteString } from "./issues.ts";
import { type ConfigResult, type PendingIssue, validatePending } from "./validate.ts";
import { counted } from "../model/plural.ts";

/** Bounds on what a configuration document may expand to (aliases can multiply a small text). */
export const MAX_NODES = 100_000;
const MAX_DEPTH = 64;
const MAX_YAML_ISSUES = 10;

interface Located {
  readonly value?: number;
  readonly key?: number;
}

export class Converter {
  readonly positions = new Map<string, Located>();
  readonly issues: (PendingIssue & { readonly offset?: number })[] = [];
  /** How many values were converted (aliases count once per use): bounded by MAX_NODES. */
  nodes = 0;
  private stopped = false;

  /** `trackPositions` false: no positions recorded (a caller that re-reads on any issue needs none). */
  constructor(
    private readonly doc: Document,
    private readonly trackPositions = true,
  ) {}

  private note(path: ConfigPath, entry: Located): void {
    if (!this.trackPositions) return;
    const key = JSON.stringify(path);
    this.positions.set(key, { ...this.positions.get(key), ...entry });
  }

  private fail(path: ConfigPath, offset: number | undefined, message: string): void {
    this.issues.push({ path, message, ...(offset === undefined ? {} : { offset }) });
  }

  /** `aliasAt`: where the outermost alias being expanded is written, the place to blame. */
  convert(node: unknown, path: ConfigPath, depth: number, aliasAt?: number): unknown {
    if (this.stopped) return undefined;
    if (++this.nodes > MAX_NODES || depth > MAX_DEPTH) {
      this.stopped = true;
      const offset = aliasAt ?? (node as YamlNode | null)?.range?.[0];
      this.fail(
        [],
        offset,
        depth > MAX_DEPTH
          ? `the document nests deeper than ${MAX_DEPTH} levels here; a configuration needs 4`
          : `the document expands to more than ${MAX_NODES} values (through aliases); write it out plainly`,
      );
      return undefined;
    }
    if (node === null || node === undefined) return null;
    const yamlNode = node as YamlNode;
    const start = yamlNode.range?.[0];
    if (
      this.trackPositions &&
      start !== undefined &&
      this.positions.get(JSON.stringify(path))?.value === undefined
    )
      this.note(path, { value: start });
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined) {
        this.fail(
          path,
          start,
          `alias ${quoteString(`*${node.source}`)} does not refer to an anchor defined before it`,
        );
        return null;
      }
      return this.convert(target, path, depth + 1, aliasAt ?? start);
    }
    if (isScalar(node)) {
      const v = node.value;
      if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
      const tag = node.tag === undefined ? "" : ` (${node.tag.replace(/^tag:yaml.org,2002:/, "!!")})`;
      return new UnsupportedValue(`a YAML value with no plain meaning${tag}`);
    }
    if (isSeq(node)) {
      return node.items.map((item, i) => this.convert(item, [...path, i], depth + 1, aliasAt));
    }
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const pair of node.items) {
        const keyNode: unknown = pair.key;
        const keyStart = (keyNode as YamlNode | null)?.range?.[0];
        if (!isScalar(keyNode) || typeof keyNode.value === "symbol" || typeof keyNode.value === "object") {
          const what =
            isScalar(keyNode) && typeof keyNode.value === "symbol"
              ? "merge keys (<<)"
              : "keys that are not plain text";
          this.fail(path, keyStart ?? start, `${what} are not supported; write each key out`);
          continue;
        }
        const key = String(keyNode.value);
        if (this.trackPositions) this.note([...path, key], keyStart === undefined ? {} : { key: keyStart });
        // defineProperty: a "__proto__" key must become an own property, not a prototype.
        Object.defineProperty(out, key, {
          value: this.convert(pair.value, [...path, key], depth + 1, aliasAt),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    return new UnsupportedValue(describe(undefined));
  }
}

/** The key written at `offset`, for a duplicate-key message (yaml points at its first character). */
function keyTextAt(text: string, offset: number): string {
  const match = /^("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^:,{}[\]\n]*)/.exec(
    text.slice(offset, offset + 200),
  );
  const key = (match?.[1] ?? "").trim();
  // A quoted key (JSON writes every key so) is named by its text, as the other messages do.
  if (key.startsWith('"')) {
    try {
      return String(JSON.parse(key));
    } catch {
      return key;
    }
  }
  return key.startsWith("'") ? key.slice(1, -1).replaceAll("''", "'") : key;
}

/** The first line of a yaml error, without the library's source excerpt. */
function shortMessage(message: string): string {
  const first = (message.split("\n")[0] ?? message).replace(/ at line \d+, column \d+:?$/, "");
  // yaml quotes source text in some messages: escape it like every other user value, and cap it.
  const capped = first.length > 200 ? `${first.slice(0, 200)}...` : first;
  return escapeUnprintable(capped);
}

export function readYamlDocument(text: string, lineCounter?: LineCounter): Document {
  return parseDocument(text, {
    ...(lineCounter === undefined ? {} : { lineCounter }),
    prettyErrors: false,
    uniqueKeys: true,
    keepSourceTokens: false,
  });
}

export function parseConfigText(text: string): ConfigResult {
  const lineCounter = new LineCounter();
  const at = (offset: number | undefined): { line?: number; col?: number } => {
    if (offset === undefined) return {};
    const { line, col } = lineCounter.linePos(offset);
    return { line, col };
  };
  let doc: Document;
  try {
    doc = readYamlDocument(text, lineCounter);
  } catch (error) {
    // parseDocument reports problems as doc.errors; this is a guard against a library bug.
    return {
      ok: false,
      issues: [{ path: [], message: `the text could not be read as YAML: ${String(error)}` }],
    };
  }

  const yamlProblems = [...doc.errors, ...doc.warnings].sort((a, b) => a.pos[0] - b.pos[0]);
  const yamlIssues: ConfigIssue[] = yamlProblems.slice(0, MAX_YAML_ISSUES).map((e) => ({
    path: [],
    message:
      e.code === "DUPLICATE_KEY"
        ? `YAML: duplicate key ${quoteString(keyTextAt(text, e.pos[0]))}; each key may appear once`
        : e.code === "MULTIPLE_DOCS"
          ? "YAML: the text holds more than one document (a second ---); put the configuration in one"
          : `YAML: ${shortMessage(e.message)}`,
    ...at(e.pos[0]),
  }));
  const rest = yamlProblems[MAX_YAML_ISSUES];
  if (rest !== undefined) {
    // One slip (a missing bracket) cascades into an error per token: the first ones are the news.
    const more = yamlProblems.length - MAX_YAML_ISSUES;
    yamlIssues.push({
      path: [],
      message: `YAML: ${counted(more, "more problem")} from here on, likely caused by the ones above`,
      ...at(rest.pos[0]),
    });
  }
  if (yamlIssues.length > 0) return { ok: false, issues: sortIssues(yamlIssues) };

  const converter = new Converter(doc);
  const value = converter.convert(doc.contents, [], 0);
  const located = (path: ConfigPath, atKey: boolean, offset?: number): ConfigIssue => {
    if (offset !== undefined) return { path, message: "", ...at(offset) };
    // The nearest path that has a position: the issue's own node, else its parent's.
    for (let n = path.length; n >= 0; n--) {
      const entry = converter.positions.get(JSON.stringify(path.slice(0, n)));
      const pos = atKey && n === path.length ? (entry?.key ?? entry?.value) : (entry?.value ?? entry?.key);
      if (pos !== undefined) return { path, message: "", ...at(pos) };
    }
    return { path, message: "", ...at(0) };
  };
  const withPosition = (issue: PendingIssue & { offset?: number }): ConfigIssue => ({
    ...located(issue.path, issue.atKey === true, issue.offset),
    message: issue.message,
  });

  if (converter.issues.length > 0)
    return { ok: false, issues: sortIssues(converter.issues.map(withPosition)) };
  if (doc.contents === null) {
    return {
      ok: false,
      issues: [{ path: [], message: "the configuration is empty; it needs at least `networks:`", ...at(0) }],
    };
  }
  const { config, issues } = validatePending(value);
  if (config !== undefined) return { ok: true, config, value };
  return { ok: false, issues: sortIssues(issues.map(withPosition)) };
}

/** By position, stably: the order a reader meets them in the file. */
function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) => {
      const la = a.issue.line ?? Infinity;
      const lb = b.issue.line ?? Infinity;
      if (la !== lb) return la - lb;
      const ca = a.issue.col ?? 0;
      const cb = b.issue.col ?? 0;
      return ca !== cb ? ca - cb : a.i - b.i;
    })
    .map(({ issue }) => issue);
}
