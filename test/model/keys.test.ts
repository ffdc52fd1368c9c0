// Object identities: a rule's key names every field the kernel compares, so that rules differing in
// any one of them never share a key, and equal rules always do.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { freshRouteKey, freshRuleKey, routeKey, ruleKey } from "../../src/model/keys.ts";
import type { Route, Rule } from "../../src/model/state.ts";

const range = fc.option(
  fc.record({ start: fc.integer({ min: 0, max: 65535 }), end: fc.integer({ min: 0, max: 65535 }) }),
  { nil: undefined },
);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const rule: fc.Arbitrary<Rule> = fc
  .record({
    family: fc.constantFrom(4 as const, 6 as const),
    priority: fc.integer({ min: 0, max: 32767 }),
    not: maybe(fc.constant(true as const)),
    from: maybe(fc.constantFrom("1.2.3.0/24", "10.112.0.0/12", "2001:db8::/64")),
    to: maybe(fc.constantFrom("1.2.3.0/24", "10.112.0.0/12")),
    iif: maybe(fc.constantFrom("ext0", "eth0")),
    oif: maybe(fc.constantFrom("ext0", "eth0")),
    fwmark: maybe(fc.integer({ min: 0, max: 0xffff })),
    fwmask: maybe(fc.integer({ min: 0, max: 0xffff })),
    tos: maybe(fc.integer({ min: 1, max: 255 })),
    ipproto: maybe(fc.constantFrom(6, 17)),
    sport: range,
    dport: range,
    uidrange: range,
    action: fc.constantFrom("lookup" as const, "goto" as const, "unreachable" as const),
    table: maybe(fc.integer({ min: 1, max: 300 })),
    goto: maybe(fc.integer({ min: 1, max: 32767 })),
    suppressPrefixlength: maybe(fc.integer({ min: 0, max: 128 })),
    suppressIfgroup: maybe(fc.integer({ min: 0, max: 10 })),
    protocol: maybe(fc.constantFrom(201, 4)),
  })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as Rule);

test("rules have equal keys exactly when every field but the protocol is equal", () => {
  const withoutProtocol = (r: Rule): string => {
    const { protocol: _ignored, ...rest } = r;
    return JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
  };
  fc.assert(
    fc.property(rule, rule, (a, b) => {
      assert.equal(ruleKey(a) === ruleKey(b), withoutProtocol(a) === withoutProtocol(b));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(rule, (a) => {
      assert.equal(ruleKey(a), ruleKey({ ...a }));
    }),
  );
});

test("a rule's key is its fields in a fixed order, '|' between them", () => {
  const r: Rule = {
    family: 4,
    priority: 1001,
    fwmark: 10,
    fwmask: 0x3fff,
    action: "lookup",
    table: 20009,
    protocol: 201,
  };
  assert.equal(ruleKey(r), "4|1001||||||10|16383||||||lookup|20009|||");
});

const route: fc.Arbitrary<Route> = fc
  .record({
    family: fc.constantFrom(4 as const, 6 as const),
    table: fc.integer({ min: 1, max: 30000 }),
    type: fc.constantFrom("unicast" as const, "blackhole" as const),
    dst: fc.constantFrom("default", "1.2.3.0/24", "2001:db8::/64"),
    src: maybe(fc.constantFrom("2001:db8::/64")),
    tos: maybe(fc.integer({ min: 1, max: 255 })),
    metric: maybe(fc.integer({ min: 0, max: 1024 })),
    dev: maybe(fc.constantFrom("ext0", "eth0")),
    protocol: maybe(fc.constantFrom(201, 4)),
  })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as Route);

// The keys are kept per object (the diff asks for them on every plan); kept, they are what a fresh
// computation gives, for the object asked again and for an equal copy.
test("a kept route or rule key is the fresh one", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(route, rule), { maxLength: 20 }), fc.array(fc.nat()), (pairs, picks) => {
      for (const pick of [...picks, ...picks]) {
        const [r, u] = pairs[pick % Math.max(pairs.length, 1)] ?? [undefined, undefined];
        if (r === undefined || u === undefined) continue;
        assert.equal(routeKey(r), freshRouteKey(r));
        assert.equal(ruleKey(u), freshRuleKey(u));
        assert.equal(routeKey({ ...r }), freshRouteKey(r));
        assert.equal(ruleKey({ ...u }), freshRuleKey(u));
      }
    }),
    { numRuns: 500 },
  );
});
