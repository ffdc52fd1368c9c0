// A jump of symroute's from a built-in chain listed twice (iptables keeps duplicates, and its `-D`
// removes one copy) is brought back to one by the next payload: a `-D` per extra copy, never one
// more, since a `-D` that finds no rule fails the whole restore (measured, iptables-nft 1.8.9).

import { test } from "node:test";
import assert from "node:assert/strict";
import { ALL_JUMPS, type FirewallSpec } from "../../src/model/firewall.ts";
import { renderIptables } from "../../src/render/firewall-scripts.ts";

const SPEC: FirewallSpec = {
  backend: "iptables",
  mask: 0xff,
  entries: [{ network: "red", family: 4, iif: "ext0", pools: ["1.2.3.0/24"], value: 1 }],
};
const pre = ALL_JUMPS(4).find((r) => r.chain === "PREROUTING" && r.target.includes("SYMROUTE-PRE"));

const linesFor = (script: string, key: string, op: string): string[] =>
  script.split("\n").filter((l) => l.startsWith(`${op} PREROUTING`) && l.includes(`"${key}"`));

test("a wanted jump listed twice: one copy deleted, none inserted", () => {
  assert.ok(pre !== undefined);
  const present = new Set(ALL_JUMPS(4).map((r) => r.key));
  const twice = new Map([[pre.key, 2]]);
  const script = renderIptables(SPEC, 4, present, twice);
  assert.equal(linesFor(script, pre.key, "-D").length, 1, script);
  assert.equal(linesFor(script, pre.key, "-I").length, 0, script);
  // Listed once: left alone.
  const once = renderIptables(SPEC, 4, present);
  assert.equal(linesFor(once, pre.key, "-D").length + linesFor(once, pre.key, "-I").length, 0, once);
});

test("a jump no longer wanted, listed three times: three deletions", () => {
  assert.ok(pre !== undefined);
  const script = renderIptables(undefined, 4, new Set([pre.key]), new Map([[pre.key, 3]]));
  assert.equal(linesFor(script, pre.key, "-D").length, 3, script);
});

test("the earlier layout's guard jump from PREROUTING is deleted before its chain is removed", () => {
  const legacy = ALL_JUMPS(4).find((r) => r.chain === "PREROUTING" && r.target === "-j SYMROUTE-GUARD");
  assert.ok(legacy !== undefined, "ALL_JUMPS still knows the guard's own jump");
  const guarded: FirewallSpec = {
    ...SPEC,
    guards: [{ family: 4, iif: "ext0", mode: "strict", exempt: ["1.2.3.0/24"], reason: "r" }],
  };
  const script = renderIptables(guarded, 4, new Set([legacy.key]));
  const lines = script.split("\n");
  const deleted = lines.findIndex((l) => l.startsWith("-D PREROUTING") && l.includes(`"${legacy.key}"`));
  assert.notEqual(deleted, -1, script);
  assert.ok(deleted < lines.indexOf("-X SYMROUTE-GUARD"), script);
  assert.equal(linesFor(script, legacy.key, "-I").length, 0, script);
});
