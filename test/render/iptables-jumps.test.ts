// A rule of symroute's in a built-in chain listed twice (iptables keeps duplicates, and its `-D`
// removes one copy) is brought back to one by the next payload: a `-D` per extra copy, never one
// more, since a `-D` that finds no rule fails the whole restore (measured, iptables-nft 1.8.9).
// Rules of the built-in chains no longer wanted are found from their keys alone (knownJumps), also
// those of the layouts before, and deleted before the chains they jump to are removed.

import { test } from "node:test";
import assert from "node:assert/strict";
import { iptablesRules, keyOf, knownJumps, type FirewallSpec } from "../../src/model/firewall.ts";
import { renderIptables } from "../../src/render/firewall-scripts.ts";

const SPEC: FirewallSpec = {
  backend: "iptables",
  mask: 0xff,
  entries: [{ network: "red", family: 4, iif: "ext0", pools: ["1.2.3.0/24"], value: 1 }],
};
const GUARDED: FirewallSpec = {
  ...SPEC,
  guards: [{ family: 4, iif: "ext0", mode: "strict", exempt: ["1.2.3.0/24"], reason: "r" }],
};
const builtins = (spec: FirewallSpec) =>
  iptablesRules(spec, 4).filter((r) => r.chain === "PREROUTING" || r.chain === "OUTPUT");
const replies = builtins(SPEC).find((r) => r.chain === "PREROUTING" && r.target === "-j SYMROUTE-PRE");

const linesFor = (script: string, key: string, op: string, chain = "PREROUTING"): string[] =>
  script.split("\n").filter((l) => l.startsWith(`${op} ${chain}`) && l.includes(`"${key}"`));

test("every rule of the built-in chains is known again from its key alone", () => {
  for (const spec of [SPEC, GUARDED, { ...GUARDED, mask: 0x3fff00 }]) {
    const wanted = builtins(spec);
    assert.ok(wanted.length >= 3);
    const known = knownJumps(
      4,
      wanted.map((r) => r.key),
    );
    for (const r of wanted)
      assert.deepEqual(
        known.find((k) => k.key === r.key),
        r,
        r.key,
      );
  }
});

test("a wanted rule listed twice: one copy deleted, none inserted", () => {
  assert.ok(replies !== undefined);
  const present = new Set(builtins(SPEC).map((r) => r.key));
  const twice = new Map([[replies.key, 2]]);
  const script = renderIptables(SPEC, 4, present, twice);
  assert.equal(linesFor(script, replies.key, "-D").length, 1, script);
  assert.equal(linesFor(script, replies.key, "-I").length, 0, script);
  // Listed once: left alone.
  const once = renderIptables(SPEC, 4, present);
  assert.equal(linesFor(once, replies.key, "-D").length + linesFor(once, replies.key, "-I").length, 0, once);
});

test("a rule no longer wanted, listed three times: three deletions", () => {
  assert.ok(replies !== undefined);
  const script = renderIptables(undefined, 4, new Set([replies.key]), new Map([[replies.key, 3]]));
  assert.equal(linesFor(script, replies.key, "-D").length, 3, script);
  assert.ok(
    script.indexOf(`"${replies.key}"`) < script.indexOf("-X SYMROUTE-PRE"),
    "deleted before its chain goes",
  );
});

test("a change of mask or interface deletes the rules of the old ones and inserts the new", () => {
  const old = builtins(GUARDED).map((r) => r.key);
  const moved: FirewallSpec = {
    ...GUARDED,
    mask: 0xff00,
    entries: [{ ...SPEC.entries[0]!, iif: "ext1" }],
    guards: [{ family: 4, iif: "ext1", mode: "strict", exempt: ["1.2.3.0/24"], reason: "r" }],
  };
  const script = renderIptables(moved, 4, new Set(old));
  for (const key of old) {
    const output = key.startsWith("symroute local ");
    assert.equal(
      linesFor(script, key, "-D", output ? "OUTPUT" : "PREROUTING").length,
      1,
      `${key}\n${script}`,
    );
  }
  for (const r of builtins(moved)) assert.equal(linesFor(script, r.key, "-I", r.chain).length, 1, script);
  // ext0's guard chain, no longer wanted, is declared (flushed) and removed after its jump went.
  assert.match(script, /^:SYMROUTE-G-ext0 - \[0:0\]$/m);
  assert.ok(script.indexOf("-D PREROUTING -i ext0") < script.indexOf("-X SYMROUTE-G-ext0"), script);
});

test("the missing rules of the built-in chains go in at the top in the spec's order", () => {
  const targets = (spec: FirewallSpec): (string | undefined)[] => {
    const script = renderIptables(spec, 4, new Set());
    const inserted = script.split("\n").filter((l) => l.startsWith("-I PREROUTING 1"));
    // Inserted at the top one after the other: the last line ends up first.
    return inserted.reverse().map((l) => / -j (\S+)$/.exec(l)?.[1]);
  };
  // A guarded pool interface classifies from its guard chain; an unguarded one from PREROUTING.
  assert.deepEqual(targets(GUARDED), ["SYMROUTE-G-ext0", "SYMROUTE-PRE"]);
  assert.deepEqual(targets(SPEC), ["SYMROUTE-CLASSIFY", "SYMROUTE-PRE"]);
});

test("the earlier layouts' jumps from PREROUTING and OUTPUT are deleted before their chains are removed", () => {
  for (const [label, chain, builtin] of [
    ["symroute guard", "SYMROUTE-GUARD", "PREROUTING"],
    ["symroute prerouting", "SYMROUTE-PRE", "PREROUTING"],
    ["symroute output", "SYMROUTE-OUT", "OUTPUT"],
  ] as const) {
    const legacy = knownJumps(4).find((r) => r.chain === builtin && r.target === `-j ${chain}`);
    assert.ok(legacy !== undefined && legacy.key.startsWith(`${label} #`), `knownJumps still knows ${label}`);
    const script = renderIptables(undefined, 4, new Set([legacy.key]));
    const lines = script.split("\n");
    const deleted = lines.findIndex((l) => l.startsWith(`-D ${builtin}`) && l.includes(`"${legacy.key}"`));
    assert.notEqual(deleted, -1, script);
    assert.ok(deleted < lines.indexOf(`-X ${chain}`), script);
    // With a spec, the old jump goes and the new rules come in its place.
    const upgraded = renderIptables(GUARDED, 4, new Set([legacy.key]));
    assert.equal(linesFor(upgraded, legacy.key, "-D", builtin).length, 1, upgraded);
    assert.equal(linesFor(upgraded, legacy.key, "-I", builtin).length, 0, upgraded);
  }
});

test("the replies' jump of the first form (no direction test) is deleted on upgrade", () => {
  for (const [chain, label, target] of [
    ["PREROUTING", "symroute replies 0xff", "SYMROUTE-PRE"],
    ["OUTPUT", "symroute local replies 0xff", "SYMROUTE-OUT"],
  ] as const) {
    const body = `-m connmark ! --mark 0x0/0xff -j ${target}`;
    const key = keyOf(label, chain, body);
    const script = renderIptables(SPEC, 4, new Set([key]));
    assert.deepEqual(linesFor(script, key, "-D", chain), [
      `-D ${chain} -m connmark ! --mark 0x0/0xff -m comment --comment "${key}" -j ${target}`,
    ]);
  }
});

test("a key of symroute's label with a name no token allows names no rule", () => {
  const known = knownJumps(4, [
    "symroute guard bad/name #0123abcd",
    "symroute replies 0x1ffffffff #0123abcd",
  ]);
  assert.equal(known.length, 3, "only the fixed rules of the layouts before");
});
