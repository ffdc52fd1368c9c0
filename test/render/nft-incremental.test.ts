// The partial nft transaction (src/render/nft-incremental.ts): applied to the tables the previous
// whole-table transaction left, it leaves exactly the tables the next whole-table transaction
// would, rule for rule (checked on the fake's model of nft, test/support/fake-nft.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { FirewallSpec, MarkEntry, SpoofGuard, ArpProbe } from "../../src/model/firewall.ts";
import { renderNft } from "../../src/render/firewall-scripts.ts";
import { renderNftIncremental, scriptChains } from "../../src/render/nft-incremental.ts";
import { applyNftScript, checkNftScript, type NftRuleset } from "../support/fake-nft.ts";

const INTERFACES = ["ext0", "ext1", "eth1"];

const entryArb: fc.Arbitrary<Omit<MarkEntry, "value">> = fc
  .record({
    network: fc.constantFrom("a", "b", "c", "d", "e", "f"),
    family: fc.constantFrom(4 as const, 6 as const),
    iif: fc.constantFrom(...INTERFACES),
    pools: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 3 }),
  })
  .map(({ network, family, iif, pools }) => ({
    network,
    family,
    iif,
    pools: pools.map((p) => (family === 4 ? `10.${p}.0.0/24` : `2001:db8:${p}::/64`)),
  }));

const guardArb: fc.Arbitrary<SpoofGuard> = fc
  .record({
    family: fc.constantFrom(4 as const, 6 as const),
    iif: fc.constantFrom(...INTERFACES),
    mode: fc.constantFrom("strict" as const, "loose" as const),
    exempt: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { maxLength: 2 }),
  })
  .map(({ family, iif, mode, exempt }) => ({
    family,
    iif,
    mode,
    exempt: exempt.map((p) => (family === 4 ? `10.${p}.0.0/24` : `2001:db8:${p}::/64`)),
    reason: "test",
  }));

const probeArb: fc.Arbitrary<ArpProbe> = fc
  .record({
    oif: fc.constantFrom(...INTERFACES),
    targets: fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 3 }),
  })
  .map(({ oif, targets }) => ({ oif, targets: targets.map((t) => `10.9.9.${t}/32`), reason: "test" }));

/** A spec, or none (the tables removed), with one mark value per network and one guard per interface and family. */
const specArb: fc.Arbitrary<FirewallSpec | undefined> = fc.option(
  fc
    .record({
      entries: fc.array(entryArb, { maxLength: 6 }),
      guards: fc.array(guardArb, { maxLength: 3 }),
      probes: fc.array(probeArb, { maxLength: 2 }),
    })
    .map(({ entries, guards, probes }) => {
      const values = new Map<string, number>();
      const seen = new Set<string>();
      const unique = entries.filter((e) => {
        const k = `${e.network}/${e.family}/${e.iif}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      const guarded = new Set<string>();
      const oifs = new Set<string>();
      return {
        backend: "nftables" as const,
        mask: 0xff,
        entries: unique.map((e) => {
          if (!values.has(e.network)) values.set(e.network, values.size + 1);
          return { ...e, value: values.get(e.network) ?? 1 };
        }),
        guards: guards.filter((g) => {
          const k = `${g.family}/${g.iif}`;
          if (guarded.has(k)) return false;
          guarded.add(k);
          return true;
        }),
        arpProbes: probes.filter((p) => {
          if (oifs.has(p.oif)) return false;
          oifs.add(p.oif);
          return true;
        }),
      };
    }),
  { freq: 5, nil: undefined },
);

/** Runs `script` as the fake kernel does: checked by nft's rules, then applied to the content. */
function run(tables: NftRuleset, script: string): NftRuleset {
  checkNftScript(script, new Map([...tables].map(([t, chains]) => [t, new Set(chains.keys())])));
  return applyNftScript(tables, script);
}

/** The tables as comparable text: chains sorted by name (nft lists new chains last; nothing depends on it). */
function canonical(tables: NftRuleset): string[] {
  return [...tables]
    .filter(([t]) => t.endsWith(" symroute"))
    .flatMap(([t, chains]) =>
      [...chains]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, c]) => `${t} ${name} ${c.hook ?? "-"}\n  ${c.rules.join("\n  ")}`),
    )
    .sort();
}

test("applied to the previous tables, the partial transaction leaves what the whole-table one leaves", () => {
  fc.assert(
    fc.property(specArb, specArb, (before, after) => {
      const previous = renderNft(before);
      const next = renderNft(after);
      const held = run(new Map(), previous);
      const whole = run(held, next);
      const prevChains = scriptChains(previous);
      const nextChains = scriptChains(next);
      assert.ok(prevChains !== undefined && nextChains !== undefined);
      const partial = renderNftIncremental(prevChains, nextChains);
      if (partial === undefined) {
        // Only when nothing differs (no hook ever changes in place here).
        assert.deepEqual(canonical(whole), canonical(held));
        return;
      }
      assert.deepEqual(canonical(run(held, partial)), canonical(whole), partial);
      // Nothing whole-table about it: no table is deleted that the next one keeps.
      for (const line of partial.split("\n"))
        if (line.startsWith("delete table "))
          assert.ok(!next.includes(`${line.slice("delete ".length)} {\n`), line);
    }),
    { numRuns: 400 },
  );
});

test("one network more: only the chains it touches, new chains before the rules that jump to them", () => {
  const entry = (i: number): MarkEntry => ({
    network: `n${i}`,
    family: 4,
    iif: "ext0",
    pools: [`10.${i >> 8}.${i & 255}.0/24`],
    value: i + 1,
  });
  const spec = (n: number): FirewallSpec => ({
    backend: "nftables",
    mask: 0x3fff,
    entries: Array.from({ length: n }, (_, i) => entry(i)),
  });
  const before = scriptChains(renderNft(spec(100)));
  const after = scriptChains(renderNft(spec(101)));
  assert.ok(before !== undefined && after !== undefined);
  const partial = renderNftIncremental(before, after) ?? "";
  const lines = partial.trimEnd().split("\n");
  assert.deepEqual(
    lines.map((l) => l.split(" ").slice(0, 5).join(" ")),
    [
      "add chain inet symroute m0x65",
      "flush chain inet symroute classify_ext0",
      "flush chain inet symroute restore",
      "add rule inet symroute m0x65",
      "add rule inet symroute classify_ext0",
      "add rule inet symroute restore",
    ],
  );
  // And back: the chains of the network removed are flushed and deleted after their referrers changed.
  const back = (renderNftIncremental(after, before) ?? "").trimEnd().split("\n");
  assert.deepEqual(back.slice(-2), ["flush chain inet symroute m0x65", "delete chain inet symroute m0x65"]);
  assert.equal(renderNftIncremental(after, after), undefined);
});

test("a chain whose hook would change, or that moves table, is left to the whole-table transaction", () => {
  const chain = (family: "inet" | "netdev", text: string) => ({ family, chain: "x", text });
  const hooked = "    type filter hook prerouting priority mangle; policy accept;\n    accept";
  assert.equal(
    renderNftIncremental(
      new Map([["x", chain("inet", hooked)]]),
      new Map([["x", chain("inet", "    accept")]]),
    ),
    undefined,
  );
  assert.equal(
    renderNftIncremental(
      new Map([["x", chain("inet", "    accept")]]),
      new Map([["x", chain("netdev", "    accept")]]),
    ),
    undefined,
  );
});

test("the fake refuses a partial transaction that deletes a chain still jumped to", () => {
  const held = run(
    new Map(),
    renderNft({
      backend: "nftables",
      mask: 0xff,
      entries: [{ network: "a", family: 4, iif: "ext0", pools: ["10.0.0.0/24"], value: 1 }],
    }),
  );
  assert.throws(() => run(held, "flush chain inet symroute m0x1\ndelete chain inet symroute m0x1\n"), /busy/);
});
