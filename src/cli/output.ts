// How every command reports (text for people, JSON for machines, one exit-code table), and what
// the commands share in reading their options (--state-dir, parsers commander reports as usage errors).

import { resolve } from "node:path";
import { InvalidArgumentError, Option } from "@commander-js/extra-typings";
import pc from "picocolors";
import { isSymrouteError } from "../model/errors.ts";

export const EXIT = {
  ok: 0,
  error: 1,
  /** `plan`: changes are pending. */
  changesPending: 2,
  /** `doctor`: problems found. */
  problemsFound: 3,
  /** `plan`/`apply`: foreign objects keep some desired objects out (everything else converged). */
  conflicts: 4,
} as const;

export type OutputFormat = "text" | "json";

export function parseOutputFormat(value: string): OutputFormat {
  if (value === "text" || value === "json") return value;
  throw new InvalidArgumentError(`--output must be "text" or "json", not ${JSON.stringify(value)}`);
}

/**
 * `--state-dir`: an absolute path, as the configuration's stateDir must be. A relative one is taken
 * from the current directory once (so the `state:` line, doctor's fix and a later run from elsewhere
 * agree on it); an empty one (`--state-dir "$UNSET"` in a script) would put the state at `/`.
 */
export function parseStateDir(value: string): string {
  if (value.trim() === "")
    throw new InvalidArgumentError(
      "--state-dir needs a directory, not an empty string (an unset variable in a script?)",
    );
  return resolve(value);
}

/** `--state-dir` of the commands that read a configuration (plan, apply, delete, doctor, agent). */
export const stateDirOption = () =>
  new Option(
    "--state-dir <dir>",
    "where symroute keeps its state (default: the config's stateDir, else /var/lib/symroute)",
  ).argParser(parseStateDir);

/**
 * An option's parser for commander: commander reports InvalidArgumentError as a usage error (exit
 * 1, the flag named, a hint naming the command's --help); any other error thrown by a parser crashes with a stack.
 */
export function commanderParser<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      const hint = isSymrouteError(error) && error.hint !== undefined ? ` (${error.hint})` : "";
      throw new InvalidArgumentError(`${error instanceof Error ? error.message : String(error)}${hint}`);
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const INTERNAL_HINT = "this is a bug in symroute; please report it with the command you ran";

/**
 * The `error` of `-o json`: a SymrouteError's fields, or for a bug in symroute kind `internal` with
 * the same fields (details empty, the hint the text output gives), so a script reads one shape.
 */
export function errorJson(error: unknown): Record<string, unknown> {
  if (isSymrouteError(error)) return error.toJSON();
  return {
    kind: "internal",
    message: error instanceof Error ? error.message : String(error),
    details: [],
    hint: INTERNAL_HINT,
  };
}

/** Print an error the way every command does, and return the exit code for it. */
function reportError(error: unknown, format: OutputFormat): number {
  if (format === "json") {
    process.stdout.write(`${JSON.stringify({ error: errorJson(error) }, null, 2)}\n`);
    return EXIT.error;
  }
  if (isSymrouteError(error)) {
    process.stderr.write(`${pc.red("error")} (${error.kind}): ${error.message}\n`);
    for (const line of error.details) process.stderr.write(`  ${line}\n`);
    if (error.hint !== undefined) process.stderr.write(`${pc.dim("hint:")} ${error.hint}\n`);
  } else {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`${pc.red("internal error")}: ${message}\n`);
    process.stderr.write(`hint: ${INTERNAL_HINT}\n`);
  }
  return EXIT.error;
}

/** Run a command body and exit with its code; errors are printed, never thrown to Node. */
export async function runAndExit(format: OutputFormat, body: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await body();
  } catch (error) {
    code = reportError(error, format);
  }
  process.exitCode = code;
  // Let stdout drain; exit explicitly so a stray handle (a watcher, a socket) cannot keep us alive.
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit(code);
}
