// The one way every command reports a configuration file it cannot read.

import { SymrouteError } from "../model/errors.ts";

/** `cannot read the configuration file PATH: ENOENT`, with what to check; the cause kept. */
export function configFileReadError(path: string, cause: unknown): SymrouteError {
  const code = (cause as NodeJS.ErrnoException).code;
  return new SymrouteError(
    "invalid-argument",
    `cannot read the configuration file ${path}: ${code ?? String(cause)}`,
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
