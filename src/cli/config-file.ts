// The one way every command reports a configuration file it cannot read.

import { fileErrorText } from "../adapters/file-error.ts";
import { SymrouteError } from "../model/errors.ts";

export { fileErrorText };

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
