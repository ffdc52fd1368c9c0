// Configuration issues: where (a path, and a line:col when the text is known) and what.
// Every user value that reaches a message goes through `quote`, so a hostile file cannot put
// newlines, terminal escapes or bidirectional overrides into the output.

export type ConfigPath = readonly (string | number)[];

export interface ConfigIssue {
  readonly path: ConfigPath;
  readonly message: string;
  readonly line?: number;
  readonly col?: number;
}

const MAX_SHOWN = 64;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Characters that must never be printed raw: controls, format (RTL marks, zero-width), separators, combining. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\p{M}]|[^\P{Z} ]/gu;

/** `text` with every unprintable character as \\uXXXX: safe on a terminal and in a log line. */
export function escapeUnprintable(text: string): string {
  return text.replace(UNPRINTABLE, (ch) => {
    const code = ch.codePointAt(0) ?? 0;
    return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** A string as a double-quoted, escaped, length-capped literal. */
export function quoteString(text: string): string {
  const chars = Array.from(text);
  const shown = chars.length > MAX_SHOWN ? chars.slice(0, MAX_SHOWN).join("") : text;
  const quoted = escapeUnprintable(JSON.stringify(shown));
  return chars.length > MAX_SHOWN ? `${quoted}... (${chars.length} characters)` : quoted;
}

/** A short description of any value for a message: scalars shown, collections named. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "string") return quoteString(value);
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : `${value} (not finite)`;
  if (typeof value === "boolean") return String(value);
  if (typeof value === "bigint") return `${value}`;
  if (Array.isArray(value)) return "a list";
  if (value instanceof UnsupportedValue) return value.description;
  if (typeof value === "object") return "a mapping";
  return `a ${typeof value}`;
}

/** A YAML value with no JSON equivalent (!!binary, a timestamp...): kept so it is reported, not used. */
export class UnsupportedValue {
  constructor(readonly description: string) {}
}

/** `networks[0].gateway`; odd keys (from unknown-key issues) are quoted. */
export function formatPath(path: ConfigPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${quoteString(segment)}]`;
  }
  return out;
}

/** "FILE:LINE:COL path: message"; without LINE:COL when unknown; document-level issues have no path. */
export function formatConfigIssues(fileName: string, issues: readonly ConfigIssue[]): string[] {
  const file = escapeUnprintable(fileName);
  return issues.map((issue) => {
    const where = issue.line === undefined ? file : `${file}:${issue.line}:${issue.col ?? 1}`;
    const path = formatPath(issue.path);
    // Messages quote user values already; escaping again is the safety net for any that do not.
    const message = escapeUnprintable(issue.message);
    return path === "" ? `${where}: ${message}` : `${where} ${path}: ${message}`;
  });
}
