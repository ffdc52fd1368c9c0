// The one way every command reports a configuration file it cannot read.

import { SymrouteError } from "../model/errors.ts";

/**
 * A file system error in words, with its code for searching: `no such file or directory (ENOENT)`.
 * The words are the ones Node puts before the call in the message ("ENOENT: no such file ..., open");
 * without them, the code alone, or the error as text.
 */
export function fileErrorText(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === undefined) return String(cause);
  const words = new RegExp(`^${code}: ([^,]+)`).exec((cause as Error).message ?? "")?.[1];
  return words === undefined ? code : `${words} (${code})`;
}

/** `cannot read the configuration file PATH: no such file or directory (ENOENT)`, with what to check; the cause kept. */
export function configFileReadError(path: string, cause: unknown): SymrouteError {
  const code = (cause as NodeJS.ErrnoException).code;
  return new SymrouteError(
    "invalid-argument",
    `cannot read the configuration file ${path}: ${fileErrorText(cause)}`,
    {
      cause,
      hint:
        code === "ENOENT"
          ? "check the path given with -c/--config"
          : code === "EACCES" || code === "EPERM"
            ? "this user may not read it: run as a user that may, or fix its permissions"
            : code === "EISDIR"
              ? "-c/--config takes a file, not a directory"
              : undefined,
    },
  );
}
