// A `networks` entry read without the yaml package, for the spellings a configuration file mostly
// has: one flow mapping on the `-` line (`- { name: a, addresses: [1.2.3.0/24] }`, JSON's
// `- {"name":"a"}` too), or a block mapping whose values each fit on their line (a plain or simply
// quoted scalar, or a one-line flow collection), with comments and blank lines. Under the agent's
// `--lite-mode` the yaml package takes about 170 us per entry, so 1,000 new networks cost some
// 170 ms before any check; this reader takes a few.
//
// It answers only what it is sure of: anything else (anchors, tags, multi-line scalars, nested
// block collections, escapes, a token the core schema could read as something other than a string
// or a small decimal integer, duplicate keys) is `undefined`, and the caller reads the entry with
// yaml as before. What it answers equals what yaml and the Converter give for the same text (the
// value and the count of values): test/config/plain-entry.test.ts checks it on random entries.

/** An entry's plain value and how many values it holds (the Converter's count), or undefined. */
export function readPlainEntry(text: string): { value: unknown; nodes: number } | undefined {
  if (text.includes("\t") || text.includes("\r")) return undefined;
  const reader = new EntryReader(text);
  try {
    return reader.entry();
  } catch (error) {
    if (error === NOT_PLAIN) return undefined;
    throw error;
  }
}

const NOT_PLAIN = Symbol("not plain");

function giveUp(): never {
  throw NOT_PLAIN;
}

/** Deeper than any configuration needs (the Converter's bound is 64): read such text with yaml. */
const MAX_FLOW_DEPTH = 8;

/** Characters of a plain scalar this reader takes (no spaces, indicators, quotes or `#`), and of a key. */
const PLAIN_RUN = /[A-Za-z0-9_./:-]*/y;
const KEY_CHARS = /[A-Za-z0-9_-]*/y;
const PLAIN_TOKEN = /^[A-Za-z0-9_][A-Za-z0-9_./:-]*$/;
const KEY_TOKEN = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** Keys the core schema reads as null or a boolean (their text as a key would differ). */
const NON_STRING_KEY = /^(?:[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const TRUE_WORD = /^(?:[Tt]rue|TRUE)$/;
const FALSE_WORD = /^(?:[Ff]alse|FALSE)$/;
/** What ends a plain scalar in a block mapping's value, and in a flow collection. */
const BLOCK_SCALAR_END = / /;
const FLOW_SCALAR_END = /[ ,\]}]/;
const SMALL_DECIMAL = /^(?:0|[1-9][0-9]{0,14})$/;
/** The YAML 1.2 core schema's int, float and special forms (yaml's own tests, written out). */
const CORE_NUMBER_FORMS = [
  /^0o[0-7]+$/,
  /^[-+]?[0-9]+$/,
  /^0x[0-9a-fA-F]+$/,
  /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/,
];
/** Double-quoted text with no escapes, and single-quoted text with no doubled quote. */
const SIMPLE_DOUBLE = /^"[ !#-[\]-~]*"/;
const SIMPLE_SINGLE = /^'[ -&(-~]*'/;

/** A plain scalar's value as the core schema resolves it; gives up on anything but text and small ints. */
function plainValue(token: string): unknown {
  if (!PLAIN_TOKEN.test(token) || token.endsWith(":")) giveUp();
  if (SMALL_DECIMAL.test(token)) return Number(token);
  if (token === "null" || token === "Null" || token === "NULL") return null;
  if (TRUE_WORD.test(token)) return true;
  if (FALSE_WORD.test(token)) return false;
  if (CORE_NUMBER_FORMS.some((form) => form.test(token))) giveUp();
  return token;
}

function setKey(out: Record<string, unknown>, key: string, value: unknown): void {
  if (Object.prototype.hasOwnProperty.call(out, key)) giveUp(); // yaml: a duplicate key
  // As the Converter does: a "__proto__" key becomes an own property.
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

class EntryReader {
  readonly #lines: readonly string[];
  nodes = 0;

  constructor(text: string) {
    this.#lines = text.split("\n");
  }

  entry(): { value: unknown; nodes: number } {
    const first = this.#lines[0] ?? "";
    const dash = /^( *)- +/.exec(first);
    if (dash === null) giveUp();
    const column = dash[0].length;
    const rest = first.slice(column);
    let value: unknown;
    if (rest.startsWith("{")) {
      const line = new LineCursor(first, column);
      value = this.flow(line, 0);
      line.endOfLine();
      this.#restIsComments(1);
    } else {
      value = this.#blockMapping(column);
    }
    return { value, nodes: this.nodes };
  }

  /** Lines from `from` on hold nothing but blanks and comments. */
  #restIsComments(from: number): void {
    for (let i = from; i < this.#lines.length; i++) if (!isBlankOrComment(this.#lines[i] ?? "")) giveUp();
  }

  /** A block mapping whose keys are at `column` (the first on the `-` line), a value per line. */
  #blockMapping(column: number): Record<string, unknown> {
    this.nodes++;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < this.#lines.length; i++) {
      const text = this.#lines[i] ?? "";
      if (i > 0 && isBlankOrComment(text)) {
        // A comment line indented deeper than the keys could sit inside a value: yaml decides.
        if (COMMENT_LINE.test(text) && text.indexOf("#") > column) giveUp();
        continue;
      }
      if (i > 0 && (text.length <= column || text.slice(0, column).trim() !== "" || text[column] === " "))
        giveUp();
      const line = new LineCursor(text, column);
      const key = line.key();
      line.expect(":");
      if (!line.spaces()) giveUp(); // a value on the next lines, or `key:value`: yaml decides
      if (line.atCommentOrEnd()) giveUp();
      setKey(out, key, this.#lineValue(line));
      line.endOfLine();
    }
    return out;
  }

  /** A block mapping's value: a scalar or a flow collection, all on this line. */
  #lineValue(line: LineCursor): unknown {
    const c = line.peek();
    if (c === "[" || c === "{") return this.flow(line, 0);
    this.nodes++;
    return line.scalar(BLOCK_SCALAR_END);
  }

  /** A flow collection or scalar at the cursor, inside `depth` flow collections. */
  flow(line: LineCursor, depth: number): unknown {
    if (depth > MAX_FLOW_DEPTH) giveUp();
    this.nodes++;
    const open = line.peek();
    if (open === "[") {
      line.advance();
      line.spaces();
      const out: unknown[] = [];
      if (line.peek() === "]") {
        line.advance();
        return out;
      }
      for (;;) {
        out.push(this.flow(line, depth + 1));
        line.spaces();
        const c = line.take();
        if (c === "]") return out;
        if (c !== ",") giveUp();
        line.spaces();
        if (line.peek() === "]") giveUp(); // a trailing comma: yaml decides
      }
    }
    if (open === "{") {
      line.advance();
      line.spaces();
      const out: Record<string, unknown> = {};
      if (line.peek() === "}") {
        line.advance();
        return out;
      }
      for (;;) {
        const quoted = line.peek() === '"';
        const key = quoted ? line.quotedKey() : line.key();
        line.expect(":");
        // After a plain key the `:` needs a space (`a:b` is one scalar); after a quoted one not.
        if (!line.spaces() && !quoted) giveUp();
        const c = line.peek();
        if (c === "," || c === "}" || c === undefined) giveUp();
        setKey(out, key, this.flow(line, depth + 1));
        line.spaces();
        const next = line.take();
        if (next === "}") return out;
        if (next !== ",") giveUp();
        line.spaces();
        if (line.peek() === "}") giveUp();
      }
    }
    return line.scalar(FLOW_SCALAR_END);
  }
}

const BLANK_OR_COMMENT = /^ *(?:#.*)?$/;
const COMMENT_LINE = /^ *#/;

function isBlankOrComment(line: string): boolean {
  return BLANK_OR_COMMENT.test(line);
}

/** A position in one line. */
class LineCursor {
  #at: number;

  constructor(
    readonly text: string,
    at: number,
  ) {
    this.#at = at;
  }

  peek(): string | undefined {
    return this.text[this.#at];
  }

  advance(): void {
    this.#at++;
  }

  take(): string | undefined {
    return this.text[this.#at++];
  }

  expect(c: string): void {
    if (this.take() !== c) giveUp();
  }

  /** Skips spaces; whether there were any. */
  spaces(): boolean {
    const from = this.#at;
    while (this.text[this.#at] === " ") this.#at++;
    return this.#at > from;
  }

  /** At the end of the line or at a comment (a `#` after a space: spaces() was just called). */
  atCommentOrEnd(): boolean {
    const c = this.peek();
    return c === undefined || c === "#";
  }

  /** Nothing but spaces and a comment (after a space) left on the line. */
  endOfLine(): void {
    const spaced = this.spaces();
    const c = this.peek();
    if (c === undefined) return;
    if (c === "#" && spaced) return;
    giveUp();
  }

  key(): string {
    const key = this.#match(KEY_CHARS);
    if (!KEY_TOKEN.test(key) || NON_STRING_KEY.test(key)) giveUp();
    return key;
  }

  /** The run of `sticky` at the cursor (possibly empty), the cursor after it. */
  #match(sticky: RegExp): string {
    sticky.lastIndex = this.#at;
    const found = sticky.exec(this.text)?.[0] ?? "";
    this.#at += found.length;
    return found;
  }

  quotedKey(): string {
    const value = this.#quoted();
    if (typeof value !== "string") giveUp();
    return value;
  }

  /** A scalar ending before `end` (or the line's end): quoted, or plain as the core schema reads it. */
  scalar(end: RegExp): unknown {
    const c = this.peek();
    if (c === '"' || c === "'") return this.#quoted();
    const token = this.#match(PLAIN_RUN);
    const next = this.peek();
    // Something else than the scalar's end (a space, or a flow indicator in flow context) follows it.
    if (next !== undefined && !end.test(next)) giveUp();
    return plainValue(token);
  }

  #quoted(): string {
    const rest = this.text.slice(this.#at);
    const match = (rest.startsWith('"') ? SIMPLE_DOUBLE : SIMPLE_SINGLE).exec(rest);
    if (match === null) giveUp();
    this.#at += match[0].length;
    return match[0].slice(1, -1);
  }
}
