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

export interface Overlap<T extends PrefixEntry> {
  /** The pool to report, and the entry it overlaps. */
  readonly entry: T;
  readonly other: T;
  readonly kind: "same-network" | "other-network" | "pod";
}

interface Span<T> {
  readonly item: T;
  readonly family: Family;
  readonly lo: bigint;
  readonly hi: bigint;
}

function span<T extends PrefixEntry>(item: T): Span<T> {
  const { family, value, len } = item.prefix;
  const hostBits = ((1n << BigInt(familyBits(family))) - 1n) ^ maskOf(family, len);
  return { item, family, lo: value, hi: value | hostBits };
}

function compare<T extends PrefixEntry>(a: Span<T>, b: Span<T>): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.lo !== b.lo) return a.lo < b.lo ? -1 : 1;
  if (a.hi !== b.hi) return a.hi > b.hi ? -1 : 1;
  // Equal prefixes: pod CIDRs first, so every equal pool after them is reported against one.
  const podA = a.item.network === undefined ? 0 : 1;
  const podB = b.item.network === undefined ? 0 : 1;
  return podA !== podB ? podA - podB : a.item.order - b.item.order;
}

/** Drop the entries that end before `s` starts (or are of another family): the rest contain `s`. */
function close<T>(stack: Span<T>[], s: Span<T>): void {
  for (
    let top = stack.at(-1);
    top !== undefined && (top.family !== s.family || top.hi < s.lo);
    top = stack.at(-1)
  ) {
    stack.pop();
  }
}

export function findOverlaps<T extends PrefixEntry>(entries: readonly T[]): Overlap<T>[] {
  const spans = entries.map(span).sort(compare);
  const found: Overlap<T>[] = [];
  const pools: Span<T>[] = [];
  const pods: Span<T>[] = [];
  const reportedWithPod = new Set<T>();

  for (const s of spans) {
    close(pools, s);
    close(pods, s);
    const network = s.item.network;
    if (network === undefined) {
      // Every open pool contains this pod CIDR; report each pool once.
      for (const pool of pools) {
        if (reportedWithPod.has(pool.item)) continue;
        reportedWithPod.add(pool.item);
        found.push({ entry: pool.item, other: s.item, kind: "pod" });
      }
      pods.push(s);
      continue;
    }
    // The innermost containing entry of each kind names the closest conflict.
    let same: Span<T> | undefined;
    let other: Span<T> | undefined;
    for (let i = pools.length - 1; i >= 0 && (same === undefined || other === undefined); i--) {
      const open = pools[i];
      if (open === undefined) continue;
      if (open.item.network === network) same ??= open;
      else other ??= open;
    }
    if (same !== undefined) found.push({ entry: s.item, other: same.item, kind: "same-network" });
    if (other !== undefined) found.push({ entry: s.item, other: other.item, kind: "other-network" });
    const pod = pods.at(-1);
    if (pod !== undefined && !reportedWithPod.has(s.item)) {
      reportedWithPod.add(s.item);
      found.push({ entry: s.item, other: pod.item, kind: "pod" });
    }
    pools.push(s);
  }
  return found;
}
