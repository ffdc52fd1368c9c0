// Overlaps among pools and pod CIDRs in one sorted sweep, not pairwise: a hostile file may list
// thousands of prefixes. Prefixes are laminar (two are nested or disjoint), so after sorting by
// start (the larger first on a tie) the earlier entries that overlap an entry are exactly those
// still "open" at its start, and they all contain it: a stack holds them.

import { type Family, type Prefix, familyBits, maskOf } from "../model/address.ts";

export interface PrefixEntry {
  readonly prefix: Prefix;
  /** The network index for a pool; undefined for a pod CIDR. */
  readonly network?: number;
  /** Document order: on equal prefixes the later one is reported. */
  readonly order: number;
}

/** A prefix as its first and last address: what the sweep compares. */
export interface SpanEntry {
  readonly family: Family;
  // IPv4 bounds are plain numbers (no bigint to allocate and compare), IPv6 ones bigints; only
  // entries of one family are ever compared with each other.
  readonly lo: number | bigint;
  readonly hi: number | bigint;
  /** The network index for a pool; undefined for a pod CIDR. */
  readonly network?: number | undefined;
  /** Document order: on equal prefixes the later one is reported. */
  readonly order: number;
}

export interface Overlap<T> {
  /** The pool to report, and the entry it overlaps. */
  readonly entry: T;
  readonly other: T;
  readonly kind: "same-network" | "other-network" | "pod";
}

/** The number of addresses of an IPv4 prefix by its length: a table, as this runs for every pool. */
const IPV4_SIZES: readonly number[] = Array.from({ length: 33 }, (_, len) => 2 ** (32 - len));

/** The last address of an IPv4 prefix: `word` with every host bit set. */
export function ipv4Last(word: number, len: number): number {
  const size = IPV4_SIZES[len] ?? 1;
  return word - (word % size) + size - 1;
}

/** The bounds of a prefix: numbers for IPv4, bigints for IPv6. */
export function prefixBounds(prefix: Prefix): { lo: number | bigint; hi: number | bigint } {
  const { family, value, len } = prefix;
  if (family === 4) {
    const lo = Number(value);
    return { lo, hi: ipv4Last(lo, len) };
  }
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
  // Indexing rather than at(-1): this runs twice for every pool.
  for (
    let top = stack[stack.length - 1];
    top !== undefined && (top.family !== s.family || top.hi < s.lo);
    top = stack[stack.length - 1]
  ) {
    stack.pop();
  }
}

/** The overlaps among entries that carry their bounds (the validator's pools). */
export function findSpanOverlaps<T extends SpanEntry>(entries: readonly T[]): Overlap<T>[] {
  const spans = entries.slice().sort(compare);
  const found: Overlap<T>[] = [];
  const pools: T[] = [];
  const pods: T[] = [];
  const reportedWithPod = new Set<T>();

  // An indexed loop: for-of allocates an iterator result per step until the code is optimised.
  for (let k = 0; k < spans.length; k++) {
    const s = spans[k];
    if (s === undefined) continue;
    close(pools, s);
    close(pods, s);
    const network = s.network;
    if (network === undefined) {
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
    let same: T | undefined;
    let other: T | undefined;
    for (let i = pools.length - 1; i >= 0 && (same === undefined || other === undefined); i--) {
      const open = pools[i];
      if (open === undefined) continue;
      if (open.network === network) same ??= open;
      else other ??= open;
    }
    if (same !== undefined) found.push({ entry: s, other: same, kind: "same-network" });
    if (other !== undefined) found.push({ entry: s, other, kind: "other-network" });
    const pod = pods[pods.length - 1];
    if (pod !== undefined && !reportedWithPod.has(s)) {
      reportedWithPod.add(s);
      found.push({ entry: s, other: pod, kind: "pod" });
    }
    pools.push(s);
  }
  return found;
}

/** The overlaps among prefixes. */
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
