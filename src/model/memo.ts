// A memo of a pure function of short text, for the parsers and tokens a plan runs on every address
// of every network again (under the agent's `--lite-mode` each character scanned is interpreted).
// Two generations of at most `limit` entries each: the older is dropped when the newer is full, so
// it keeps at most twice `limit`, and what is no longer asked for goes.

/** `compute` memoized; it must be pure (the same text, the same value) and its values immutable. */
export function recentMemo<V>(limit: number, compute: (text: string) => V): (text: string) => V {
  let recent = new Map<string, V>();
  let older = new Map<string, V>();
  return (text) => {
    if (recent.has(text)) return recent.get(text) as V;
    const value = older.has(text) ? (older.get(text) as V) : compute(text);
    if (recent.size >= limit) {
      older = recent;
      recent = new Map();
    }
    recent.set(text, value);
    return value;
  };
}
