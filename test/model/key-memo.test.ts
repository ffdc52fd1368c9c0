// The firewall rules' comment keys come from a memo of recent bodies (src/model/firewall.ts keyOf):
// whatever was asked before, and however often its generations turned over, it gives the key a
// fresh computation gives.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { freshKeyOf, keyOf, nftRules, type FirewallSpec } from "../../src/model/firewall.ts";

const label = fc.stringMatching(/^[A-Za-z0-9_.:/ -]{1,30}$/);
const chain = fc.constantFrom("pre", "out", "restore", "tagged", "m0x1", "tag0x1", "guard_ext0");
// Short bodies, and now and then one long enough that the memo drops a generation.
const body = fc.oneof(
  { weight: 20, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100_000, max: 400_000 }).map((n) => "x".repeat(n)) },
);

test("a memoized key is the fresh key, over any sequence of asks", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(label, chain, body), { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 80 }),
      (triples, picks) => {
        for (const pick of picks) {
          const [l, c, b] = triples[pick % triples.length] ?? ["x", "pre", ""];
          assert.equal(keyOf(l, c, b), freshKeyOf(l, c, b));
        }
      },
    ),
    { numRuns: 200 },
  );
});

test("an equal spec built again, after others, has the same rules and keys", () => {
  const spec = (n: number, shift: number): FirewallSpec => ({
    backend: "nftables",
    mask: 0x3fff,
    entries: Array.from({ length: n }, (_, i) => ({
      network: `n${i}`,
      family: 4 as const,
      iif: i % 3 === 0 ? "ext0" : "ext1",
      pools: [`100.${64 + ((i + shift) >> 8)}.${(i + shift) % 256}.0/24`],
      value: i + 1,
    })),
  });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.nat(3)), { maxLength: 8 }), (order) => {
      const first = nftRules(spec(20, 0)).map((r) => ({ ...r }));
      for (const [n, shift] of order) nftRules(spec(n, shift));
      const again = nftRules(spec(20, 0));
      assert.deepEqual(again, first);
      for (const r of again) assert.equal(r.key, freshKeyOf(r.key.replace(/ #.*/, ""), r.chain, r.body));
    }),
    { numRuns: 100 },
  );
});
