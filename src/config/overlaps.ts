// Overlaps among pools and pod CIDRs in one sorted sweep, not pairwise: a hostile file may list
// thousands of prefixes. Prefixes are laminar (two are nested or disjoint), so after sorting by
// start (the larger first on a tie) the earlier entries that overlap an entry are exactly those
// still "open" at its start, and they all contain it: a stack holds them.

import { type Family, type Prefix, familyBits, maskOf } from "../model/address.ts";

/** A prefix as its first and last address: what the sweep compares. */
export interface SpanEntry {
  readonly family: Family;
  readonly lo: bigint;
  readonly hi: bigint;
  /** The network index for a pool; undefined for a pod CIDR. */
  readonly network?: number | undefined;
  /** Document order: on equal prefixes the later one is reported. */
  readonly order: number;
}

export interface PrefixEntry {
  readonly prefix: Prefix;
  readonly network?: number;
  readonly order: number;
}

interface Overlap<T> {
  /** The pool to report, and the entry it overlaps. */
  readonly entry: T;
  readonly other: T;
  readonly kind: "same-network" | "other-network" | "pod";
}

export function prefixBounds({ family, value, len }: Prefix): { lo: bigint; hi: bigint } {
  const hostBits = ((1n << BigInt(familyBits(family))) - 1n) ^ maskOf(family, len);
  return { lo: value, hi: value | hostBits };
}

function compare(a: SpanEntry, b: SpanEntry): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.lo !== b.lo) return a.lo < b.lo ? -1 : 1;
  if (a.hi !== b.hi) return a.hi > b.hi ? -1 : 1;
  // Equal prefixes: pod CIDRs first, so every equal pool after them is reported against one.
  const podA = a.network === undefined ? 0 : 1;
  const podB = b.network === undefined ? 0 : 1;
  return podA !== podB ? podA - podB : a.order - b.order;
}

/** Drop the entries that end before `s` starts (or are of another family): the rest contain `s`. */
function close(stack: SpanEntry[], s: SpanEntry): void {
  for (
    let top = stack.at(-1);
    top !== undefined && (top.family !== s.family || top.hi < s.lo);
    top = stack.at(-1)
  )
    stack.pop();
}

export function findSpanOverlaps<T extends SpanEntry>(entries: readonly T[]): Overlap<T>[] {
  const found: Overlap<T>[] = [];
  const pools: T[] = [];
  const pods: T[] = [];
  const reportedWithPod = new Set<T>();
  for (const s of entries.slice().sort(compare)) {
    close(pools, s);
    close(pods, s);
    if (s.network === undefined) {
      // Every open pool contains this pod CIDR; report each pool once.
      for (const pool of pools) {
        if (reportedWithPod.has(pool)) continue;
        reportedWithPod.add(pool);
        found.push({ entry: pool, other: s, kind: "pod" });
      }
      pods.push(s);
      continue;
    }
    // The innermost containing entry of each kind names the closest conflict.
    const same = pools.findLast((open) => open.network === s.network);
    const other = pools.findLast((open) => open.network !== s.network);
    if (same !== undefined) found.push({ entry: s, other: same, kind: "same-network" });
    if (other !== undefined) found.push({ entry: s, other, kind: "other-network" });
    const pod = pods.at(-1);
    if (pod !== undefined && !reportedWithPod.has(s)) {
      reportedWithPod.add(s);
      found.push({ entry: s, other: pod, kind: "pod" });
    }
    pools.push(s);
  }
  return found;
}

export function findOverlaps<T extends PrefixEntry>(entries: readonly T[]): Overlap<T>[] {
  const spans = entries.map((item) => ({
    ...prefixBounds(item.prefix),
    family: item.prefix.family,
    network: item.network,
    order: item.order,
    item,
  }));
  return findSpanOverlaps(spans).map(({ entry, other, kind }) => ({
    entry: entry.item,
    other: other.item,
    kind,
  }));
}
