// A fast reader for the plain subset of YAML that configuration files are written in: block and
// single-line flow collections, plain and quoted single-line scalars, comments. It gives the same
// plain value the `yaml`-based loader (text.ts) would, or undefined whenever the text steps outside
// that subset or anything is in doubt; the caller then takes the full loader, which has the exact
// error messages and line:col positions. It exists because loading and running the `yaml` package
// costs hundreds of milliseconds on a generated file with thousands of networks.
//
// The rules below follow yaml 2.x's lexer (parse/lexer.js) and its core schema (schema/core/):
// where a plain scalar ends, when the next line would continue it, how scalars resolve.

/** Below the full loader's bounds (64 levels, 100,000 values), so no limit case is decided here. */
const MAX_DEPTH = 60;
const MAX_NODES = 90_000;
/** yaml refuses implicit keys longer than 1024 characters. */
const MAX_KEY_LENGTH = 1000;

const LF = 10;
const SPACE = 32;
const DQUOTE = 34;
const HASH = 35;
const SQUOTE = 39;
const COMMA = 44;
const DASH = 45;
const DOT = 46;
const COLON = 58;
const LT = 60;
const LBRACKET = 91;
const BACKSLASH = 92;
const RBRACKET = 93;
const LBRACE = 123;
const RBRACE = 125;

/** Thrown (one shared instance, no stack to build) when the text leaves the subset. */
class OutsideSubset {}
const OUTSIDE = new OutsideSubset();

function giveUp(): never {
  throw OUTSIDE;
}

/**
 * The plain value of `text` (objects, arrays, strings, numbers, booleans, null), exactly as the full
 * loader converts it, or undefined when the text is not in the subset this reader is sure about.
 */
export function parseYamlSubset(text: string): unknown {
  if (!onlySimpleCharacters(text)) return undefined;
  try {
    return new SubsetReader(text).document();
  } catch (error) {
    if (error === OUTSIDE) return undefined;
    throw error;
  }
}

const NOT_PRINTABLE_ASCII = /[^\n\x20-\x7e]/;

/**
 * No tabs, carriage returns, control characters, byte order marks, Unicode spaces or line
 * separators, lone surrogates: characters whose treatment differs between YAML readers (or that
 * yaml reports) are left to the full loader.
 */
function onlySimpleCharacters(text: string): boolean {
  const n = text.length;
  // Most files are printable ASCII throughout: one native scan says so.
  const first = text.search(NOT_PRINTABLE_ASCII);
  if (first === -1) return true;
  for (let i = first; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= SPACE && c < 0x7f) continue;
    if (c === LF) continue;
    if (c < 0xa1) return false; // controls, tab, CR, DEL, C1 controls (NEL), no-break space
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (c > 0xdbff || next < 0xdc00 || next > 0xdfff) return false;
      i++;
      continue;
    }
    if (
      c === 0x1680 ||
      c === 0x180e ||
      (c >= 0x2000 && c <= 0x200b) ||
      c === 0x2028 ||
      c === 0x2029 ||
      c === 0x202f ||
      c === 0x205f ||
      c === 0x3000 ||
      c === 0xfeff ||
      c === 0xfffe ||
      c === 0xffff
    ) {
      return false;
    }
  }
  return true;
}

function isFlowIndicator(c: number): boolean {
  return c === COMMA || c === LBRACKET || c === RBRACKET || c === LBRACE || c === RBRACE;
}

/**
 * Characters a plain scalar may start with here. Indicators (- ? : , [ ] { } # & * ! | > ' " % @ `)
 * are excluded ('-' is handled by the caller); so is '<', to keep clear of merge keys.
 */
function isPlainStartChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) || // 0-9
    (c >= 65 && c <= 90) || // A-Z
    (c >= 97 && c <= 122) || // a-z
    c >= 0x80 ||
    c === DOT ||
    c === 47 || // /
    c === 95 || // _
    c === 43 || // +
    c === 126 || // ~
    c === 40 || // (
    c === 41 || // )
    c === 36 || // $
    c === 59 || // ;
    c === 61 || // =
    c === 94 // ^
  );
}

/** ASCII characters that may end a plain scalar (1) or not (0), in block and in flow context. */
const STOPS_IN_BLOCK = new Uint8Array(128);
const STOPS_IN_FLOW = new Uint8Array(128);
for (const c of [LF, SPACE, COLON]) {
  STOPS_IN_BLOCK[c] = 1;
  STOPS_IN_FLOW[c] = 1;
}
for (const c of [COMMA, LBRACKET, RBRACKET, LBRACE, RBRACE]) STOPS_IN_FLOW[c] = 1;

const INT_OCT = /^0o[0-7]+$/;
const INT = /^[-+]?[0-9]+$/;
const INT_HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT_NAN = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;

/**
 * False when `text` cannot match any number pattern below: a '/' or ':' or a second '.' (addresses
 * and prefixes, the most common scalars, which would otherwise run six regular expressions).
 */
function mayBeNumber(text: string): boolean {
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      if (++dots > 1) return false;
    } else if (c === 47 || c === COLON) {
      return false;
    }
  }
  return true;
}

/** A plain scalar's value under the YAML 1.2 core schema, tested in yaml's order. */
function resolvePlain(text: string): unknown {
  const c = text.charCodeAt(0);
  if ((c >= 48 && c <= 57) || c === 43 || c === DASH || c === DOT) {
    if (!mayBeNumber(text)) return text;
    if (INT_OCT.test(text)) return parseInt(text.substring(2), 8);
    if (INT.test(text)) return parseInt(text, 10);
    if (INT_HEX.test(text)) return parseInt(text.substring(2), 16);
    if (FLOAT_NAN.test(text)) {
      if (text.slice(-3).toLowerCase() === "nan") return Number.NaN;
      return text.charCodeAt(0) === DASH ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
    }
    if (FLOAT_EXP.test(text) || FLOAT.test(text)) return parseFloat(text);
    return text;
  }
  switch (text) {
    case "~":
    case "null":
    case "Null":
    case "NULL":
      return null;
    case "true":
    case "True":
    case "TRUE":
      return true;
    case "false":
    case "False":
    case "FALSE":
      return false;
    default:
      return text;
  }
}

/** What a one-character double-quoted escape stands for (yaml's table, less the tab). */
function simpleEscape(c: number): string | undefined {
  switch (c) {
    case 48: // 0
      return "\0";
    case 97: // a
      return "\x07";
    case 98: // b
      return "\b";
    case 101: // e
      return "\x1b";
    case 102: // f
      return "\f";
    case 110: // n
      return "\n";
    case 114: // r
      return "\r";
    case 116: // t
      return "\t";
    case 118: // v
      return "\v";
    case 78: // N
      return "\u0085";
    case 95: // _
      return "\u00a0";
    case 76: // L
      return "\u2028";
    case 80: // P
      return "\u2029";
    case SPACE:
      return " ";
    case DQUOTE:
      return '"';
    case 47: // /
      return "/";
    case BACKSLASH:
      return "\\";
    default:
      return undefined;
  }
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // yaml reports duplicate keys. No value read here is undefined, so a quick look rules most out.
  if (target[key] !== undefined && Object.prototype.hasOwnProperty.call(target, key)) giveUp();
  if (key === "__proto__") {
    // An own property, as the full loader makes it, not a new prototype.
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/**
 * A recursive-descent reader over the text with one cursor. Between block-level steps the cursor
 * sits on the first character of the next content line (not blank, not a comment), `indent` being
 * that line's indentation, or -1 at the end of the text.
 */
class SubsetReader {
  private readonly n: number;
  private p = 0;
  /** Start of the line the cursor is on. */
  private lineStart = 0;
  private indent = -1;
  private nodes = 0;
  private markerAllowed = true;

  constructor(private readonly s: string) {
    this.n = s.length;
  }

  document(): unknown {
    this.toContent();
    this.markerAllowed = false;
    if (this.indent < 0) giveUp(); // empty: the full loader says what it needs
    const c = this.s.charCodeAt(this.p);
    let value: unknown;
    if (c === LBRACKET || c === LBRACE) {
      value = this.flow(0);
      this.endLine();
      this.toContent();
    } else {
      value = this.blockNode(this.indent, 0, false);
    }
    if (this.indent !== -1) giveUp();
    return value;
  }

  private count(depth: number): void {
    if (++this.nodes > MAX_NODES || depth > MAX_DEPTH) giveUp();
  }

  private code(i: number): number {
    return i < this.n ? this.s.charCodeAt(i) : LF;
  }

  /** A space, a line end or the end of the text at `i`. */
  private blankAt(i: number): boolean {
    const c = this.code(i);
    return c === SPACE || c === LF;
  }

  private skipSpaces(): void {
    while (this.p < this.n && this.s.charCodeAt(this.p) === SPACE) this.p++;
  }

  /** To the end of the current line (its line feed, or the end of the text). */
  private toLineEnd(): void {
    const lf = this.s.indexOf("\n", this.p);
    this.p = lf === -1 ? this.n : lf;
  }

  /** After a value on a line: only spaces and a comment (separated by a space) may follow. */
  private endLine(): void {
    const from = this.p;
    this.skipSpaces();
    const c = this.code(this.p);
    if (c === LF) return;
    if (c === HASH && this.p > from) return this.toLineEnd();
    giveUp();
  }

  /** From a line end (or a line start) to the next content line; sets `indent`. */
  private toContent(): void {
    const s = this.s;
    const n = this.n;
    let p = this.p;
    for (;;) {
      if (p >= n) {
        this.p = n;
        this.indent = -1;
        return;
      }
      if (s.charCodeAt(p) === LF) {
        p++;
        this.lineStart = p;
      }
      let q = p;
      while (q < n && s.charCodeAt(q) === SPACE) q++;
      if (q >= n) {
        this.p = n;
        this.indent = -1;
        return;
      }
      const c = s.charCodeAt(q);
      if (c === LF) {
        p = q;
        continue;
      }
      if (c === HASH) {
        const lf = s.indexOf("\n", q);
        p = lf === -1 ? n : lf;
        continue;
      }
      if (q === this.lineStart && (c === DASH || c === DOT)) {
        // "---" and "..." at the start of a line: document markers, or close enough to doubt.
        if (s.charCodeAt(q + 1) === c && s.charCodeAt(q + 2) === c) {
          if (!this.markerAllowed || c !== DASH || !this.blankAt(q + 3)) giveUp();
          this.markerAllowed = false;
          this.p = q + 3;
          this.endLine();
          p = this.p;
          continue;
        }
      }
      this.p = q;
      this.indent = q - this.lineStart;
      return;
    }
  }

  /**
   * A block node starting at the cursor, in column `col`. `inline`: it follows "- " on the same
   * line, where a scalar or flow collection may stand; on a line of its own only a block mapping or
   * sequence is taken (a scalar there could run on over the next lines).
   */
  private blockNode(col: number, depth: number, inline: boolean): unknown {
    const s = this.s;
    const start = this.p;
    const c = s.charCodeAt(start);
    if (c === DASH && this.blankAt(start + 1)) return this.blockSeq(col, depth);
    if (c === LBRACKET || c === LBRACE) {
      if (!inline) giveUp();
      const value = this.flow(depth);
      this.endLine();
      this.toContent();
      return value;
    }
    if (c === DQUOTE || c === SQUOTE) {
      const text = this.quoted();
      const afterQuote = this.p;
      this.skipSpaces();
      if (this.code(this.p) === COLON && this.blankAt(this.p + 1)) {
        if (afterQuote - start > MAX_KEY_LENGTH) giveUp();
        this.p++;
        return this.blockMap(col, depth, text);
      }
      if (!inline) giveUp();
      this.p = afterQuote; // endLine wants to see the space before a comment
      this.count(depth);
      this.endLine();
      this.toContent();
      return text;
    }
    if (!this.plainStarts(c, start, false)) giveUp();
    const end = this.scanPlain(false);
    const text = s.slice(start, end);
    if (this.code(this.p) === COLON) {
      const key = plainKey(text);
      this.p++;
      return this.blockMap(col, depth, key);
    }
    if (!inline) giveUp();
    this.count(depth);
    this.endLine();
    this.toContent();
    return resolvePlain(text);
  }

  /** The cursor is just past the first key's ':'. */
  private blockMap(indent: number, depth: number, firstKey: string): Record<string, unknown> {
    this.count(depth);
    const out: Record<string, unknown> = {};
    let key = firstKey;
    for (;;) {
      if (key === "<<") giveUp();
      setOwn(out, key, this.mapValue(indent, depth + 1));
      if (this.indent < indent) return out;
      if (this.indent > indent) giveUp();
      key = this.blockKey();
    }
  }

  /** A key at the cursor, which is at the mapping's indentation; leaves the cursor past its ':'. */
  private blockKey(): string {
    const code = this.s.charCodeAt(this.p);
    const text = this.keyText(false);
    if (code === DQUOTE || code === SQUOTE) {
      this.skipSpaces();
      if (this.code(this.p) !== COLON || !this.blankAt(this.p + 1)) giveUp();
    } else if (this.code(this.p) !== COLON) giveUp();
    this.p++;
    return text;
  }

  /** A quoted or plain key at the cursor, which stays just after it. */
  private keyText(inFlow: boolean): string {
    const s = this.s;
    const start = this.p;
    const c = s.charCodeAt(start);
    if (c === DQUOTE || c === SQUOTE) {
      const text = this.quoted();
      if (this.p - start > MAX_KEY_LENGTH) giveUp();
      return text;
    }
    if (!this.plainStarts(c, start, inFlow)) giveUp();
    return plainKey(s.slice(start, this.scanPlain(inFlow)));
  }

  /** The value after "key:"; the cursor is just past the ':'. */
  private mapValue(indent: number, depth: number): unknown {
    this.skipSpaces();
    const c = this.code(this.p);
    if (c === LF || c === HASH) {
      this.toLineEnd();
      this.toContent();
      if (this.indent > indent) return this.blockNode(this.indent, depth, false);
      // A sequence may sit at its key's own indentation.
      if (this.indent === indent && this.s.charCodeAt(this.p) === DASH && this.blankAt(this.p + 1)) {
        return this.blockSeq(indent, depth);
      }
      this.count(depth);
      return null;
    }
    const value = this.inlineValue(depth, false);
    this.endLine();
    this.toContent();
    return value;
  }

  /** A scalar or flow collection: after "key: " in block context, or as an item in flow context. */
  private inlineValue(depth: number, inFlow: boolean): unknown {
    const s = this.s;
    const start = this.p;
    const c = s.charCodeAt(start);
    if (c === LBRACKET || c === LBRACE) return this.flow(depth);
    this.count(depth);
    if (c === DQUOTE || c === SQUOTE) return this.quoted();
    if (!this.plainStarts(c, start, inFlow)) giveUp();
    const end = this.scanPlain(inFlow);
    // After "key: ", another ": " would make "a: b: c", which is not YAML.
    if (!inFlow && this.code(this.p) === COLON) giveUp();
    return resolvePlain(s.slice(start, end));
  }

  /** The cursor is on the first entry's '-', in column `indent`. */
  private blockSeq(indent: number, depth: number): unknown[] {
    this.count(depth);
    const out: unknown[] = [];
    for (;;) {
      this.p++; // the '-'
      this.skipSpaces();
      const c = this.code(this.p);
      if (c === LF || c === HASH) {
        this.toLineEnd();
        this.toContent();
        if (this.indent > indent) {
          out.push(this.blockNode(this.indent, depth + 1, false));
        } else {
          this.count(depth + 1);
          out.push(null);
        }
      } else {
        out.push(this.blockNode(this.p - this.lineStart, depth + 1, true));
      }
      if (this.indent < indent) return out;
      if (this.indent > indent) giveUp();
      if (this.s.charCodeAt(this.p) !== DASH || !this.blankAt(this.p + 1)) return out;
    }
  }

  /** A flow collection that opens at the cursor and closes on the same line. */
  private flow(depth: number): unknown {
    this.count(depth);
    const s = this.s;
    if (s.charCodeAt(this.p) === LBRACKET) {
      const out: unknown[] = [];
      if (this.openFlow(RBRACKET)) return out;
      do out.push(this.inlineValue(depth + 1, true));
      while (!this.afterFlowItem(RBRACKET));
      return out;
    }
    const out: Record<string, unknown> = {};
    if (this.openFlow(RBRACE)) return out;
    do {
      const key = this.keyText(true);
      this.flowSpaces();
      if (s.charCodeAt(this.p) !== COLON || this.code(this.p + 1) !== SPACE) giveUp();
      this.p++;
      this.flowSpaces();
      if (key === "<<") giveUp();
      setOwn(out, key, this.inlineValue(depth + 1, true));
    } while (!this.afterFlowItem(RBRACE));
    return out;
  }

  /** Past the opening bracket; true when the collection is empty (its closing bracket consumed). */
  private openFlow(close: number): boolean {
    this.p++;
    this.flowSpaces();
    if (this.s.charCodeAt(this.p) !== close) return false;
    this.p++;
    return true;
  }

  /** After an item: true at the closing bracket (consumed), else past the comma to the next item. */
  private afterFlowItem(close: number): boolean {
    this.flowSpaces();
    const c = this.s.charCodeAt(this.p);
    if (c === close) {
      this.p++;
      return true;
    }
    if (c !== COMMA) giveUp();
    this.p++;
    this.flowSpaces();
    if (this.s.charCodeAt(this.p) === close) giveUp(); // a trailing comma
    return false;
  }

  /** Spaces inside a flow collection; a line end there means a multi-line collection. */
  private flowSpaces(): void {
    this.skipSpaces();
    if (this.code(this.p) === LF) giveUp();
  }

  private plainStarts(c: number, at: number, inFlow: boolean): boolean {
    if (c === DASH) {
      // "-x" is a plain scalar; "- " is a sequence entry, and in flow "-," or "-]" is an error.
      const next = this.code(at + 1);
      return next !== SPACE && next !== LF && !(inFlow && isFlowIndicator(next));
    }
    return isPlainStartChar(c) && c !== LT;
  }

  /**
   * Scans a one-line plain scalar from the cursor, as yaml's lexer does: it ends at ": " (or ':' at
   * the line end), at " #", at the line end and, in flow, at ",[]{}" and at ':' before one of those.
   * Returns the end of its text (trailing spaces excluded) and leaves the cursor where it stopped.
   * In flow, anything but an indicator or ':' stopping it means a comment or a line end: give up.
   */
  private scanPlain(inFlow: boolean): number {
    const s = this.s;
    const n = this.n;
    let i = this.p;
    let end = i;
    const stops = inFlow ? STOPS_IN_FLOW : STOPS_IN_BLOCK;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c >= 128 || stops[c] === 0) {
        end = ++i;
        continue;
      }
      if (c === COLON) {
        const next = this.code(i + 1);
        if (next === SPACE || next === LF || (inFlow && isFlowIndicator(next))) break;
        end = ++i;
      } else if (c === SPACE) {
        if (this.code(i + 1) === HASH) break;
        i++;
      } else if (c === LF) {
        break;
      } else if (inFlow && isFlowIndicator(c)) {
        break;
      } else {
        end = ++i;
      }
    }
    this.p = i;
    if (inFlow) {
      const c = this.code(i);
      if (c !== COLON && !isFlowIndicator(c)) giveUp();
    }
    return end;
  }

  /** A single- or double-quoted scalar on one line; the cursor ends past its closing quote. */
  private quoted(): string {
    const s = this.s;
    const n = this.n;
    const quote = s.charCodeAt(this.p);
    let i = this.p + 1;
    let start = i;
    let text = "";
    for (;;) {
      if (i >= n) giveUp();
      const c = s.charCodeAt(i);
      if (c === LF) giveUp();
      if (c === quote) {
        if (quote === SQUOTE && this.code(i + 1) === SQUOTE) {
          text += s.slice(start, i + 1);
          i += 2;
          start = i;
          continue;
        }
        break;
      }
      if (c === BACKSLASH && quote === DQUOTE) {
        text += s.slice(start, i);
        const e = this.code(i + 1);
        const simple = simpleEscape(e);
        if (simple !== undefined) {
          text += simple;
          i += 2;
        } else {
          const length = e === 120 ? 2 : e === 117 ? 4 : e === 85 ? 8 : 0; // \x \u \U
          if (length === 0) giveUp();
          let code = 0;
          for (let k = 0; k < length; k++) {
            const h = this.code(i + 2 + k);
            if (!isHexDigit(h)) giveUp();
            code = code * 16 + parseInt(String.fromCharCode(h), 16);
          }
          if (code > 0x10ffff) giveUp();
          text += String.fromCodePoint(code);
          i += 2 + length;
        }
        start = i;
        continue;
      }
      i++;
    }
    this.p = i + 1;
    return text + s.slice(start, i);
  }
}

/** A plain key must stay text under the core schema ("1", "true", "null" would not). */
function plainKey(text: string): string {
  if (text.length === 0 || text.length > MAX_KEY_LENGTH) giveUp();
  const value = resolvePlain(text);
  if (typeof value !== "string") giveUp();
  return value;
}
