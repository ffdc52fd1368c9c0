// The validator's IPv4 fast path against the general parser of src/model/address.ts: whatever the
// fast path accepts, the general one accepts with the same value, length and canonical text.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatPrefix, parseIp, parsePrefix } from "../../src/model/address.ts";
import { ipv4Word, strictIpv4Prefix } from "../../src/config/ipv4-text.ts";

const runs = Number(process.env["SYMROUTE_FUZZ_RUNS"] ?? "300");

const octet = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.constantFrom("00", "01", "256", "", "a"),
);
const addressText = fc
  .tuple(octet, octet, octet, octet, fc.constantFrom(".", ":", ".."))
  .map(([a, b, c, d, sep]) => [a, b, c, d].join(sep === ".." ? "." : sep));
const prefixText = fc.oneof(
  addressText,
  fc
    .tuple(
      addressText,
      fc.oneof(fc.integer({ min: 0, max: 40 }).map(String), fc.constantFrom("", "024", "00", "x")),
    )
    .map(([a, len]) => `${a}/${len}`),
);

test("strictIpv4Prefix: accepts only what parsePrefix accepts strictly, with the same result", () => {
  fc.assert(
    fc.property(prefixText, (text) => {
      const fast = strictIpv4Prefix(text);
      const general = parsePrefix(text, { strict: true });
      if (fast === undefined) {
        // Refused by the fast path: IPv6, /0, or invalid (the general path then reports it).
        assert.ok(general === undefined || general.family === 6 || general.len === 0, text);
        return;
      }
      assert.ok(general !== undefined && general.family === 4, text);
      assert.equal(BigInt(fast.word), general.value);
      assert.equal(fast.len, general.len);
      assert.equal(fast.text, formatPrefix(general));
    }),
    { numRuns: runs * 10 },
  );
});

test("ipv4Word: the same value as parseIp, and the text is already canonical", () => {
  fc.assert(
    fc.property(addressText, (text) => {
      const word = ipv4Word(text);
      const ip = parseIp(text);
      if (word === undefined) {
        assert.ok(ip === undefined || ip.family === 6, text);
        return;
      }
      assert.ok(ip !== undefined && ip.family === 4, text);
      assert.equal(BigInt(word), ip.value);
    }),
    { numRuns: runs * 10 },
  );
});
