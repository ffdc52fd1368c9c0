// Re-reading a configuration text after an edit without re-reading all of it: the agent re-reads its
// file on every change, and at 1,000 networks a whole parse costs far more than the change (yaml's
// parser is most of it, and its CST alone is not much cheaper). The text is split by lines into the
// entries of the top-level `networks` block sequence and the rest (the skeleton); an entry whose text
// is unchanged since the last read reuses what it was read and checked to then, only new entries are
// parsed (each on its own) and checked, and the checks across networks run on the whole.
//
// The result is always parseConfigText's: this path only ever answers a clean read (no YAML problem,
// no issue). Anything else (a problem anywhere, a shape the splitter does not know: flow style, JSON,
// several documents, directives) is read again by parseConfigText, which gives the issues with their
// lines. test/config/incremental.test.ts checks the equality on random configurations and edits.

import { isMap, isScalar, isSeq } from "yaml";
import type { NetworkDraft } from "./cross.ts";
import { Converter, MAX_NODES, parseConfigText, readYamlDocument } from "./text.ts";
import {
  type CheckedNetwork,
  type ConfigResult,
  type NetworkChecker,
  type NetworkFields,
  validateNetwork,
  validateObjectWith,
  validatePending,
} from "./validate.ts";

/** One `networks` entry as read and checked before, reused while its text stays the same. */
interface ReadEntry {
  /** The plain value (shared between results: never modified). */
  readonly value: unknown;
  /** Values converted, for the bound on the whole document. */
  readonly nodes: number;
  /**
   * What its check gave, at the index it was last read at: given again as it is while the entry
   * stays at that index (no copy of a thousand drafts per read), with the index changed otherwise.
   */
  readonly checked: { readonly draft: NetworkDraft; readonly fields: NetworkFields };
}

/** What one read leaves for the next: the entries of the text it read, by their text. */
export interface ConfigTextMemo {
  readonly entries: ReadonlyMap<string, ReadEntry>;
}

export interface IncrementalRead {
  readonly result: ConfigResult;
  /** Pass to the next call. */
  readonly memo: ConfigTextMemo;
  /** How many entries were reused; undefined: the text was read whole (parseConfigText). */
  readonly reused?: number;
}

const EMPTY_MEMO: ConfigTextMemo = { entries: new Map() };

/** Lines that make the text more than one plain document: read those whole. */
const DOCUMENT_MARKERS = /^(?:---|\.\.\.|%)/m;
const NETWORKS_KEY = /^networks:(?:[ \t]+(?:#.*)?)?\r?$/;

interface Split {
  /** The text without the entries: `networks:` is left with an empty value. */
  readonly skeleton: string;
  /** Where `networks` is written (in the skeleton and the text alike). */
  readonly keyOffset: number;
  /** Each entry's text, whole lines from its `-` to the next entry (comments and blank lines after it included). */
  readonly entries: readonly string[];
}

/**
 * The entries of a top-level `networks:` block sequence, by lines; undefined for any other shape.
 * The split is checked afterwards: the skeleton must read as a mapping with `networks` empty at
 * `keyOffset`, and each entry, read on its own, as a sequence of exactly one item.
 */
export function splitNetworks(text: string): Split | undefined {
  if (text.startsWith("\ufeff") || DOCUMENT_MARKERS.test(text)) return undefined;
  let keyOffset = -1;
  let lineStart = 0;
  // The `networks:` line, at column 0 with its value on the following lines.
  while (lineStart < text.length) {
    const end = lineEnd(text, lineStart);
    if (text.startsWith("networks:", lineStart) && NETWORKS_KEY.test(text.slice(lineStart, end))) {
      keyOffset = lineStart;
      lineStart = end + 1;
      break;
    }
    lineStart = end + 1;
  }
  if (keyOffset < 0) return undefined;
  const starts: number[] = [];
  let indent = -1;
  let regionEnd = text.length;
  for (; lineStart < text.length;) {
    const end = lineEnd(text, lineStart);
    let k = lineStart;
    while (text.charCodeAt(k) === 0x20) k++;
    const ch = text[k];
    const blank = k >= end || ch === "\r" || ch === "#";
    if (ch === "\t") return undefined;
    if (!blank) {
      const column = k - lineStart;
      const item = ch === "-" && (k + 1 >= end || text[k + 1] === " " || text[k + 1] === "\r");
      if (indent < 0) {
        if (!item) return undefined;
        indent = column;
        starts.push(lineStart);
      } else if (column > indent) {
        // A line of the current entry.
      } else if (column === indent && item) starts.push(lineStart);
      else if (column === 0) {
        regionEnd = lineStart;
        break;
      } else return undefined;
    }
    lineStart = end + 1;
  }
  const first = starts[0];
  if (first === undefined) return undefined;
  const entries = starts.map((start, i) => text.slice(start, starts[i + 1] ?? regionEnd));
  return { skeleton: text.slice(0, first) + text.slice(regionEnd), keyOffset, entries };
}

function lineEnd(text: string, from: number): number {
  const end = text.indexOf("\n", from);
  return end < 0 ? text.length : end;
}

/** An entry's check as at `index`: itself when it was made there. */
const atIndex = (
  checked: ReadEntry["checked"],
  index: number,
): { readonly draft: NetworkDraft; readonly fields: NetworkFields } =>
  checked.draft.index === index ? checked : { draft: { ...checked.draft, index }, fields: checked.fields };

/** One entry's text read on its own: its value, or undefined when it is not one clean item. */
function readEntry(text: string): { value: unknown; nodes: number } | undefined {
  const doc = readYamlDocument(text);
  if (doc.errors.length > 0 || doc.warnings.length > 0) return undefined;
  const seq = doc.contents;
  if (!isSeq(seq) || seq.items.length !== 1 || seq.tag !== undefined) return undefined;
  const converter = new Converter(doc, false);
  // Depth 2: where an entry is in the whole document (mapping, networks, entry).
  const value = converter.convert(seq.items[0], [], 2);
  if (converter.issues.length > 0) return undefined;
  return { value, nodes: converter.nodes };
}

/** The skeleton's plain value with `networks` empty, or undefined when it is not that. */
function readSkeleton(split: Split): { value: Record<string, unknown>; nodes: number } | undefined {
  const doc = readYamlDocument(split.skeleton);
  if (doc.errors.length > 0 || doc.warnings.length > 0) return undefined;
  const root = doc.contents;
  // A flow mapping (`{` on the first line) may hold `networks:` at column 0 too, but never a block
  // sequence: only a block mapping reads the split entries as the whole text does.
  if (!isMap(root) || root.flow === true || root.tag !== undefined) return undefined;
  const networks = root.items.find((pair) => isScalar(pair.key) && pair.key.range?.[0] === split.keyOffset);
  if (networks === undefined || !isScalar(networks.key) || networks.key.value !== "networks")
    return undefined;
  const empty = networks.value;
  if (
    empty !== null &&
    (!isScalar(empty) || empty.value !== null || empty.tag !== undefined || empty.anchor !== undefined)
  )
    return undefined;
  const converter = new Converter(doc, false);
  const value = converter.convert(root, [], 0);
  if (converter.issues.length > 0 || typeof value !== "object" || value === null || Array.isArray(value))
    return undefined;
  return { value: value as Record<string, unknown>, nodes: converter.nodes };
}

/**
 * parseConfigText(text), reusing what `previous` (the memo of an earlier call) read of the entries of
 * `networks` whose text did not change. Pure: `previous` is not modified; the memo returned holds only
 * the entries of this text.
 */
export function parseConfigTextReusing(text: string, previous: ConfigTextMemo = EMPTY_MEMO): IncrementalRead {
  const split = splitNetworks(text);
  if (split === undefined) return { result: parseConfigText(text), memo: EMPTY_MEMO };
  // Entries read cleanly now or before: what the next read may reuse, whatever becomes of this one.
  const entries = new Map<string, ReadEntry>();
  const whole = (): IncrementalRead => ({ result: parseConfigText(text), memo: { entries } });

  const values: unknown[] = [];
  /** The entries read now, by their value: checked below, then kept. */
  const fresh = new Map<unknown, { text: string; nodes: number }>();
  let nodes = 1;
  let reused = 0;
  let unreadable = false;
  for (const entryText of split.entries) {
    const known = entries.get(entryText) ?? previous.entries.get(entryText);
    if (known !== undefined) {
      // The next read finds it at its index now (an entry written twice keeps its first index).
      const index = values.length;
      if (!entries.has(entryText))
        entries.set(
          entryText,
          known.checked.draft.index === index ? known : { ...known, checked: atIndex(known.checked, index) },
        );
      values.push(known.value);
      nodes += known.nodes;
      reused++;
      continue;
    }
    const read = unreadable ? undefined : readEntry(entryText);
    if (read === undefined) {
      // Keep going: the entries after it may be reused, and the next read may need them.
      unreadable = true;
      continue;
    }
    values.push(read.value);
    fresh.set(read.value, { text: entryText, nodes: read.nodes });
    nodes += read.nodes;
  }
  if (unreadable) return whole();
  const skeleton = readSkeleton(split);
  if (skeleton === undefined) return whole();
  // Near the bound the whole read decides (it counts a little differently).
  if (nodes + skeleton.nodes > MAX_NODES - 16) return whole();

  // `networks` is already a key of the skeleton's value (empty): redefining it keeps the key order.
  const value = skeleton.value;
  Object.defineProperty(value, "networks", {
    value: values,
    enumerable: true,
    writable: true,
    configurable: true,
  });
  const byValue = new Map<unknown, ReadEntry>();
  for (const entry of entries.values()) byValue.set(entry.value, entry);
  const checkNetwork: NetworkChecker = (item, index, out): CheckedNetwork => {
    const known = byValue.get(item);
    if (known !== undefined) return atIndex(known.checked, index);
    const before = out.length;
    const checked = validateNetwork(item, index, out);
    const read = fresh.get(item);
    // Only an entry without issues of its own (an unknown key leaves its fields valid) is kept.
    if (read !== undefined && checked.fields !== undefined && out.length === before)
      entries.set(read.text, {
        value: item,
        nodes: read.nodes,
        checked: { draft: checked.draft, fields: checked.fields },
      });
    return checked;
  };
  const { config, issues } = validatePending(value, checkNetwork);
  if (config === undefined || issues.length > 0) return whole();
  return { result: { ok: true, config, value }, memo: { entries }, reused };
}

/** A networks entry checked before: what the checks across fields need, and its fields. */
interface CheckedEntry {
  readonly draft: Omit<NetworkDraft, "index">;
  readonly fields: NetworkFields;
}

/** What validateConfigObjectReusing leaves for the next call: the clean entries, by their JSON text. */
export interface ConfigObjectMemo {
  readonly entries: ReadonlyMap<string, CheckedEntry>;
}

const EMPTY_OBJECT_MEMO: ConfigObjectMemo = { entries: new Map() };

/**
 * validateConfigObject(value), reusing the checks of the networks entries that `previous` saw
 * written the same (the agent merges the cluster's networks into the file's on every change, and
 * at 1,000 networks one more should not re-check the others). Pure: `previous` is not modified; the
 * memo returned holds the clean entries of this value.
 */
export function validateConfigObjectReusing(
  value: unknown,
  previous: ConfigObjectMemo = EMPTY_OBJECT_MEMO,
): { readonly result: ConfigResult; readonly memo: ConfigObjectMemo } {
  const entries = new Map<string, CheckedEntry>();
  const checkNetwork: NetworkChecker = (item, index, out): CheckedNetwork => {
    const key = jsonKey(item, 0);
    const known = key === undefined ? undefined : (entries.get(key) ?? previous.entries.get(key));
    if (key !== undefined && known !== undefined) {
      entries.set(key, known);
      return { draft: { ...known.draft, index }, fields: known.fields };
    }
    const before = out.length;
    const checked = validateNetwork(item, index, out);
    if (key !== undefined && checked.fields !== undefined && out.length === before) {
      const { index: _index, ...draft } = checked.draft;
      entries.set(key, { draft, fields: checked.fields });
    }
    return checked;
  };
  return { result: validateObjectWith(value, checkNetwork), memo: { entries } };
}

/**
 * The JSON text of a plain JSON value, which two values share only when they are the same value;
 * undefined for anything else (undefined, NaN, -0, holes, class instances, deep nesting).
 */
function jsonKey(value: unknown, depth: number): string | undefined {
  return isPlainJson(value, depth) ? JSON.stringify(value) : undefined;
}

function isPlainJson(value: unknown, depth: number): boolean {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value) && !Object.is(value, -0);
  if (typeof value !== "object" || depth > 8) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i], depth + 1)) return false;
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(value))
    if (!isPlainJson((value as Record<string, unknown>)[key], depth + 1)) return false;
  // A key JSON leaves out (a symbol, or one not enumerable) would make two values look alike.
  return Reflect.ownKeys(value).length === Object.keys(value).length;
}
