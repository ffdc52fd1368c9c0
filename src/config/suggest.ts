// "Did you mean": the allowed key an unknown one was most likely meant to be.

/** A key compared without case or word separators: `state_dir`, `StateDir` and `stateDir` meet. */
const folded = (key: string): string => key.toLowerCase().replace(/[-_ ]/g, "");

/** Edits between two strings (insert, delete, substitute, swap two neighbours). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) (rows[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[];
    const above = rows[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        (above[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (above[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = best;
    }
  }
  return (rows[a.length] as number[])[b.length] as number;
}

/**
 * The allowed key closest to `key`: the same but for case and separators, or within one edit (two
 * for keys of five characters or more); undefined when none is, or when two are equally close.
 */
export function closestKey(key: string, allowed: readonly string[]): string | undefined {
  // Long input is never a typo of a short key, and the distance costs length squared.
  if (key.length > 64) return undefined;
  const target = folded(key);
  const limit = target.length >= 5 ? 2 : 1;
  let best: string | undefined;
  let bestDistance = limit + 1;
  let tie = false;
  for (const candidate of allowed) {
    const distance = editDistance(target, folded(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
      tie = false;
    } else if (distance === bestDistance) tie = true;
  }
  return best === undefined || tie ? undefined : best;
}

/** `; did you mean "gateway"?` for a message, or nothing. */
export function didYouMean(key: string, allowed: readonly string[], quote: (s: string) => string): string {
  const close = closestKey(key, allowed);
  return close === undefined ? "" : `; did you mean ${quote(close)}?`;
}

/**
 * The allowed value closest to `value`, as closestKey, or else the one allowed value it begins
 * (`nft` for nftables, `ipv` for ipvs: a short form people type); undefined when none or several.
 */
export function closestChoice(value: string, allowed: readonly string[]): string | undefined {
  const close = closestKey(value, allowed);
  if (close !== undefined || value.length < 2) return close;
  const starts = allowed.filter((a) => folded(a).startsWith(folded(value)));
  return starts.length === 1 ? starts[0] : undefined;
}
