// The memos of the parsers a plan runs on every address (src/model/memo.ts): whatever was asked
// before, and however often the generations turned over, each answer is the fresh computation's.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { recentMemo } from "../../src/model/memo.ts";
import { parsePrefix, scanPrefix } from "../../src/model/address.ts";
import { cidrToken, scanCidr } from "../../src/model/tokens.ts";

test("a memo answers what its function answers, over any sequence of asks and turnovers", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.string({ maxLength: 4 }), { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 60 }),
      (limit, texts, picks) => {
        let calls = 0;
        const memo = recentMemo(limit, (t: string) => {
          calls++;
          return `${t}|${t.length}`;
        });
        for (const pick of picks) {
          const t = texts[pick % texts.length] ?? "";
          assert.equal(memo(t), `${t}|${t.length}`);
        }
        assert.ok(calls <= picks.length);
      },
    ),
  );
});

const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.constantFrom("01", "256", "x", ""));
const prefixText = fc.oneof(
  fc
    .tuple(octet, octet, octet, octet, fc.option(fc.integer({ min: 0, max: 40 })))
    .map(([a, b, c, d, len]) => `${a}.${b}.${c}.${d}${len === null ? "" : `/${len}`}`),
  fc.constantFrom("2001:db8::/64", "2001:db8::1/64", "::/0", "fe80::1", "default", "2001:db8:::1/64"),
);

test("parsePrefix and cidrToken give the fresh parse's answer, asked once or again", () => {
  fc.assert(
    fc.property(fc.array(prefixText, { minLength: 1, maxLength: 30 }), (texts) => {
      for (const t of [...texts, ...texts]) {
        assert.deepEqual(parsePrefix(t), scanPrefix(t, {}));
        assert.deepEqual(parsePrefix(t, { strict: true }), scanPrefix(t, { strict: true }));
        let fresh: string | Error;
        try {
          fresh = scanCidr(t);
        } catch (error) {
          fresh = error as Error;
        }
        if (typeof fresh === "string") assert.equal(cidrToken(t), fresh);
        else assert.throws(() => cidrToken(t), { message: fresh.message });
      }
    }),
    { numRuns: 500 },
  );
});
