// Addresses and prefixes: parse and format round-trip, and agree with an independent oracle.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import {
  formatIp,
  formatPrefix,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
} from "../../src/model/address.ts";
import { markIndexOf, markValueForIndex, popcount } from "../../src/model/marks.ts";

test("every IPv4 and IPv6 address round-trips through parse and format", () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
      const ip = parseIp(text);
      if (ip === undefined && text.includes(":") && text.includes(".")) {
        // Only the deprecated IPv4-compatible form (all zeros before the dotted part) is refused.
        assert.match(text.slice(0, text.lastIndexOf(":") + 1), /^[0:]*$/, text);
        return;
      }
      assert.ok(ip !== undefined, text);
      const again = parseIp(formatIp(ip.family, ip.value));
      assert.deepEqual(again, ip);
      assert.equal(isIP(formatIp(ip.family, ip.value)), ip.family);
    }),
    { numRuns: 2000 },
  );
});

test("the parser accepts exactly what node:net accepts, but for the forms it refuses on purpose", () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9a-fA-F:.]{0,20}$/), (text) => {
      const ours = parseIp(text) !== undefined;
      const leadingZero = /(^|[.:])0\d/.test(text) && !text.includes(":");
      const v4compat = text.includes(".") && /^[0:]*$/.test(text.slice(0, text.lastIndexOf(":") + 1));
      if (!ours && (leadingZero || v4compat)) return;
      assert.equal(ours, isIP(text) !== 0, text);
    }),
    { numRuns: 5000 },
  );
});

test("prefix containment and overlap agree with each other", () => {
  const prefix = fc
    .tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 }))
    .map(([a, l]) => parsePrefix(`${a}/${l}`));
  fc.assert(
    fc.property(prefix, prefix, (a, b) => {
      assert.ok(a !== undefined && b !== undefined);
      assert.equal(prefixesOverlap(a, b), prefixContains(a, b) || prefixContains(b, a));
      assert.deepEqual(parsePrefix(formatPrefix(a) === "default" ? "0.0.0.0/0" : formatPrefix(a)), a);
    }),
  );
});

test("mark values spread an index over the mask's bits and stay inside it", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 0xffffffff }), fc.integer({ min: 1, max: 5000 }), (mask, index) => {
      const value = markValueForIndex(index, mask);
      if (index >= 2 ** popcount(mask)) return assert.equal(value, undefined);
      assert.ok(value !== undefined && value !== 0);
      assert.equal((value & ~mask) >>> 0, 0);
      // The fwmark rules' groups read the index back from the value.
      assert.equal(markIndexOf(value, mask), index);
    }),
  );
});
