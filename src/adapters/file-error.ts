// A file system error in words for the user, shared by every adapter and command that reads or
// writes a file the user chose (the configuration, a snapshot, the state file).

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
