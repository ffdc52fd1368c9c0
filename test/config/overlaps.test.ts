// The overlap sweep against the obvious pairwise check, on prefixes crowded into a small space.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { maskOf, prefixesOverlap, type Prefix } from "../../src/model/address.ts";
import { findOverlaps, type PrefixEntry } from "../../src/config/overlaps.ts";

const runs = Number(process.env["SYMROUTE_FUZZ_RUNS"] ?? "300");

// IPv4 prefixes inside 10.0.0.0/28 and IPv6 inside 2001:db8::/124: many of them overlap.
const crowdedPrefix: fc.Arbitrary<Prefix> = fc
  .record({
    family: fc.constantFrom<4 | 6>(4, 6),
    low: fc.integer({ min: 0, max: 15 }),
    extra: fc.integer({ min: 0, max: 4 }),
  })
  .map(({ family, low, extra }) => {
    const bits = family === 4 ? 32 : 128;
    const base = family === 4 ? 10n << 24n : 0x20010db8n << 96n;
    const len = bits - 4 + extra;
    return { family, len, value: (base | BigInt(low)) & maskOf(family, len) };
  });

const entries = fc
  .array(
    fc.record({
      prefix: crowdedPrefix,
      network: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    }),
    {
      maxLength: 30,
    },
  )
  .map((list) => list.map((e, order): PrefixEntry => ({ ...e, order })));

const kindOf = (a: PrefixEntry, b: PrefixEntry): "pod" | "same-network" | "other-network" | undefined =>
  a.network === undefined && b.network === undefined
    ? undefined
    : a.network === undefined || b.network === undefined
      ? "pod"
      : a.network === b.network
        ? "same-network"
        : "other-network";

test("findOverlaps: every finding is a real overlap, and every pool in an overlap is named", () => {
  fc.assert(
    fc.property(entries, (list) => {
      const found = findOverlaps(list);
      for (const { entry, other, kind } of found) {
        assert.ok(prefixesOverlap(entry.prefix, other.prefix));
        assert.equal(kind, kindOf(entry, other));
        assert.notEqual(entry.network, undefined, "findings are reported on pools");
      }
      // Every pool in an overlap is named (a pod CIDR may stand behind an equal one already named).
      for (const a of list.filter((e) => e.network !== undefined)) {
        const overlapsSomething = list.some(
          (b) => b !== a && kindOf(a, b) !== undefined && prefixesOverlap(a.prefix, b.prefix),
        );
        const named = found.some((f) => f.entry === a || f.other === a);
        assert.equal(named, overlapsSomething, `entry ${a.order}`);
      }
    }),
    { numRuns: runs },
  );
});

test("findOverlaps: a pool is reported against the pod CIDR it overlaps, identical or nested", () => {
  fc.assert(
    fc.property(entries, (list) => {
      const found = findOverlaps(list);
      for (const pool of list.filter((e) => e.network !== undefined)) {
        const hitsPod = list.some((e) => e.network === undefined && prefixesOverlap(e.prefix, pool.prefix));
        assert.equal(
          found.some((f) => f.kind === "pod" && f.entry === pool),
          hitsPod,
          `pool ${pool.order}`,
        );
      }
    }),
    { numRuns: runs },
  );
});
