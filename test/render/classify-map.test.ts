// Classification of new connections is one lookup per family, however many networks (KERNEL-FACTS
// 12): a verdict map in nftables, an ipset in iptables; the keys still change with any element,
// which is how drift and ownership see a changed pool.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  classifyForm,
  firewallRuleKeys,
  ipsetsOf,
  type FirewallSpec,
  type MarkEntry,
} from "../../src/model/firewall.ts";
import {
  renderIpsetFill,
  renderIpsetRemove,
  renderIptables,
  renderNft,
} from "../../src/render/firewall-scripts.ts";

function spec(networks: number, backend: FirewallSpec["backend"] = "nftables"): FirewallSpec {
  const entries: MarkEntry[] = [];
  for (let i = 0; i < networks; i++) {
    const v = i + 1;
    const pool = `100.${64 + (i >> 8)}.${i & 255}.0/24`;
    entries.push({
      network: `n${i}`,
      family: 4,
      iif: i % 2 === 0 ? "ext0" : "ext1",
      pools: [pool],
      value: v,
    });
    if (i % 10 === 0)
      entries.push({
        network: `n${i}`,
        family: 6,
        iif: "ext0",
        pools: [`2001:db8:${i.toString(16)}::/64`],
        value: v,
      });
  }
  return { backend, mask: 0x3fff, entries };
}

const rulesOf = (script: string, chain: string): string[] => {
  const lines = script.split("\n");
  const start = lines.indexOf(`  chain ${chain} {`);
  assert.notEqual(start, -1, `chain ${chain} in\n${script.slice(0, 2000)}`);
  const end = lines.indexOf("  }", start);
  return lines.slice(start + 1, end).filter((l) => !l.includes(" hook "));
};

/** A chain's hook line, or undefined for a regular chain. */
const hookOf = (script: string, chain: string): string | undefined => {
  const lines = script.split("\n");
  const start = lines.indexOf(`  chain ${chain} {`);
  const line = lines[start + 1] ?? "";
  return line.includes(" hook ") ? line.trim() : undefined;
};

/** The text of one table of a script (from `table FAMILY symroute {` to its closing brace). */
const tableOf = (script: string, family: string): string => {
  const start = script.indexOf(`\ntable ${family} symroute {\n`);
  assert.notEqual(start, -1, `table ${family} in\n${script.slice(0, 2000)}`);
  return script.slice(start, script.indexOf("\n}\n", start) + 3);
};

for (const n of [1, 10, 1000]) {
  test(`${n} network(s): a pool's interface tags at its ingress; prerouting tests the mark; new connections make one lookup`, () => {
    const s = spec(n);
    const script = renderNft(s);
    const inet = tableOf(script, "inet");
    const netdev = tableOf(script, "netdev");
    const bare = (lines: string[]): string[] => lines.map((l) => l.replace(/ comment .*/, "").trim());
    // Every packet of every interface meets two tests in prerouting, neither a lookup.
    assert.deepEqual(bare(rulesOf(inet, "pre")), [
      "meta mark and 0x3fff != 0 jump tagged",
      "ct direction reply ct mark and 0x3fff != 0 jump restore",
    ]);
    assert.equal(script.includes("iifname"), false, "no lookup on the interface's name");
    assert.equal(script.includes(" . ip"), false, "no concatenated key");
    // Each pool interface's tag chain is a base chain at ingress of that device only, without a
    // lookup: after the frames it hands to stacked devices, its number in symroute's bits.
    const tagged: [string, number][] =
      n === 1
        ? [["ext0", 1]]
        : [
            ["ext0", 1],
            ["ext1", 2],
          ];
    for (const [iif, tag] of tagged) {
      assert.equal(
        hookOf(netdev, `tag_${iif}`),
        `type filter hook ingress device "${iif}" priority -450; policy accept;`,
      );
      assert.deepEqual(bare(rulesOf(netdev, `tag_${iif}`)), [
        "vlan id != 0 return",
        "meta pkttype other return",
        `meta mark set meta mark and 0xffffc000 or 0x${tag.toString(16)}`,
      ]);
    }
    // Right after conntrack, where a new connection's ct mark is still 0: a tagged new connection
    // goes to its interface's chain (one test per pool interface), whose map on the destination
    // writes the network's value as the ct mark; every tagged packet is untagged.
    assert.equal(hookOf(inet, "pre"), "type filter hook prerouting priority -199; policy accept;");
    assert.deepEqual(bare(rulesOf(inet, "tagged")), [
      "ct state new ct mark 0 jump classify",
      "meta mark set meta mark and 0xffffc000",
    ]);
    assert.deepEqual(
      bare(rulesOf(inet, "classify")),
      (n === 1 ? ["ext0"] : ["ext0", "ext1"]).map(
        (iif, i) => `meta mark and 0x3fff == 0x${(i + 1).toString(16)} goto classify_${iif}`,
      ),
    );
    const ext0 = bare(rulesOf(inet, "classify_ext0"));
    assert.equal(ext0.length, 2, ext0.join("\n"));
    assert.match(ext0[0] ?? "", /^ct mark set ip daddr map \{ 100\.64\.0\.0\/24 : 0x1[, ]/);
    assert.match(ext0[1] ?? "", /^ct mark set ip6 daddr map \{ 2001:db8::\/64 : 0x1/);
    const elements = (lines: string[]): number =>
      lines.reduce((sum, l) => sum + (l.match(/ : 0x[0-9a-f]+/g) ?? []).length, 0);
    const ext1 = n === 1 ? [] : bare(rulesOf(inet, "classify_ext1"));
    assert.equal(elements([...ext0, ...ext1]), s.entries.length);
    assert.equal(/\n {2}chain (c|tag)0x/.test(script), false, "no classify or tag chain per value");
    // One small chain per mark value for replies, each keeping the bits outside the mask.
    for (const v of [1, n]) {
      const hex = `0x${v.toString(16)}`;
      assert.deepEqual(bare(rulesOf(inet, `m${hex}`)), [`meta mark set meta mark and 0xffffc000 or ${hex}`]);
    }
    // The reply side is unchanged: one dispatch by mark.
    assert.equal(rulesOf(inet, "restore").length, 1);
  });
}

test("odd interface names give distinct classify chains that are nft identifiers", () => {
  // Every character ifnameToken allows, at any place, and names that read as numbers or keywords.
  const names = [
    "a.b-c_d",
    "-x",
    ".x",
    "x..",
    "0",
    "123456789012345",
    "1.2.3.4",
    "eth0.100",
    "_",
    "vmap",
    "ff02",
  ];
  const entries: MarkEntry[] = names.map((iif, i) => ({
    network: `n${i}`,
    family: 4,
    iif,
    pools: [`100.64.${i}.0/24`],
    value: i + 1,
  }));
  const script = renderNft({ backend: "nftables", mask: 0xff, entries });
  const chains = names.map((iif) => {
    const rules = rulesOf(script, `classify_${iif}`);
    assert.equal(rules.length, 1, iif);
    assert.equal(rulesOf(script, `tag_${iif}`).length, 3, iif);
    assert.equal(hookOf(script, `tag_${iif}`)?.includes(`device "${iif}"`), true, iif);
    return `classify_${iif}`;
  });
  assert.equal(new Set(chains).size, names.length);
  // nft's identifiers: a letter or `_` or `.` first, then letters, digits, `/ - _ .`.
  for (const c of chains) assert.match(c, /^[A-Za-z_.][A-Za-z0-9/\-_.]*$/);
  // A name ifnameToken refuses never reaches a chain name.
  assert.throws(() =>
    renderNft({ backend: "nftables", mask: 0xff, entries: [{ ...entries[0]!, iif: "a b" }] }),
  );
});

test("a changed pool, interface or value changes the keys (drift and ownership see it)", () => {
  const base = spec(100);
  const keys = new Set(firewallRuleKeys(base));
  const variants: FirewallSpec[] = [
    { ...base, entries: base.entries.map((e, i) => (i === 50 ? { ...e, pools: ["100.99.0.0/24"] } : e)) },
    { ...base, entries: base.entries.map((e, i) => (i === 50 ? { ...e, iif: "ext9" } : e)) },
    { ...base, entries: base.entries.slice(0, -1) },
  ];
  for (const v of variants) {
    const other = firewallRuleKeys(v);
    assert.ok(
      other.some((k) => !keys.has(k)),
      "a variant must have a key the base does not",
    );
  }
});

test("plan names the form: a map for nftables, a set for iptables", () => {
  assert.equal(classifyForm(undefined), undefined);
  assert.equal(classifyForm({ backend: "nftables", mask: 0xff, entries: [] }), undefined);
  const nft = classifyForm(spec(10));
  assert.equal(nft?.form, "map");
  assert.equal(nft?.lookups, 1);
  assert.equal(nft?.lookupsElsewhere, 0);
  assert.match(
    nft?.text ?? "",
    /one map lookup on ip daddr \/ ip6 daddr per new connection tagged at ingress of a pool's interface \(2 interfaces\), .*; none for connections on other interfaces$/,
  );
  const ipt = classifyForm(spec(10, "iptables"));
  assert.equal(ipt?.form, "set");
  assert.equal(ipt?.size, 11);
  assert.equal(ipt?.lookups, 1);
  assert.equal(ipt?.lookupsElsewhere, 0);
  assert.match(ipt?.text ?? "", /one ipset lookup .*hash:net,iface symroute-c4-[0-9a-f]{8}, symroute-c6-/);
});

test("a bad word in an entry is refused, naming it", () => {
  const bad = {
    ...spec(2),
    entries: [{ network: "x", family: 4 as const, iif: "ext0", pools: ["1.2.3.0/24 }"], value: 1 }],
  };
  assert.throws(() => renderNft(bad));
});

/** A spec of `n` networks with anti-spoofing guards on both interfaces, both families. */
function guarded(n: number): FirewallSpec {
  const base = spec(n, "iptables");
  const guards = (["ext0", "ext1"] as const).flatMap((iif) =>
    ([4, 6] as const).map((family) => ({
      family,
      iif,
      mode: "strict" as const,
      exempt: base.entries.filter((e) => e.iif === iif && e.family === family).flatMap((e) => e.pools),
      reason: "r",
    })),
  );
  return { ...base, guards };
}

const rulesPerChain = (script: string): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const l of script.split("\n")) {
    const chain = /^-[AI] (\S+)/.exec(l)?.[1];
    if (chain !== undefined) counts[chain] = (counts[chain] ?? 0) + 1;
  }
  return counts;
};

test("iptables: 2 and 50 networks give the same rules in every chain (the pools are in ipsets)", () => {
  for (const family of [4, 6] as const) {
    const one = rulesPerChain(renderIptables(guarded(2), family, new Set()));
    const fifty = rulesPerChain(renderIptables(guarded(50), family, new Set()));
    assert.deepEqual(fifty, one, `IPv${family}`);
    // The lookup, the miss test, the save and the clear.
    assert.equal(one["SYMROUTE-CLASSIFY"], 4);
    // In PREROUTING: one jump per guarded interface (behind its `-i` test, no set lookup; every
    // interface here is guarded, so its new connections are classified from its guard chain), and
    // the replies' jump behind the connmark and direction tests; the restore alone in SYMROUTE-PRE
    // and SYMROUTE-OUT.
    assert.equal(one["PREROUTING"], 2 + 1);

    assert.equal(one["OUTPUT"], 1);
    assert.equal(one["SYMROUTE-PRE"], 1);
    assert.equal(one["SYMROUTE-OUT"], 1);
    assert.equal(one["SYMROUTE-NEW"], undefined);
    assert.equal(one["SYMROUTE-GUARD"], undefined);
    // In each interface's chain: its new connections to the classify set, the pools' set, then the
    // source check (IPv6: neighbour discovery returned before it).
    assert.equal(one["SYMROUTE-G-ext0"], family === 4 ? 3 : 6);
  }
  // The sets hold the pools: one element per pool and interface.
  const sets = ipsetsOf(guarded(50));
  const elements = (prefix: string): number =>
    sets.filter((s) => s.name.startsWith(prefix)).reduce((n, s) => n + s.elements.length, 0);
  assert.equal(elements("symroute-c4-"), 50);
  assert.equal(elements("symroute-g4-"), 50);
  assert.equal(elements("symroute-c6-"), 5);
});

test("iptables: new connections to a pool are one set lookup; the mark's bits only are saved", () => {
  const s = spec(100, "iptables");
  const script = renderIptables(s, 4, new Set());
  const [classifySet] = ipsetsOf(s).map((x) => x.name);
  const strip = (l: string): string => l.replace(/ -m comment --comment "[^"]*"/, "");
  // New connections of a pool's interface go to the set from PREROUTING, one rule per pool
  // interface; only those reach the set, and look it up once (its hit is read back from the packet
  // mark's bits). Packets of connections symroute marked go on to the restore of replies.
  const prerouting = script.split("\n").filter((l) => l.startsWith("-I PREROUTING "));
  assert.deepEqual(prerouting.reverse().map(strip), [
    "-I PREROUTING 1 -i ext0 -m conntrack --ctstate NEW -j SYMROUTE-CLASSIFY",
    "-I PREROUTING 1 -i ext1 -m conntrack --ctstate NEW -j SYMROUTE-CLASSIFY",
    "-I PREROUTING 1 -m connmark ! --mark 0x0/0x3fff -m conntrack --ctdir REPLY -j SYMROUTE-PRE",
  ]);
  assert.deepEqual(
    script
      .split("\n")
      .filter((l) => l.startsWith("-I OUTPUT "))
      .map(strip),
    ["-I OUTPUT 1 -m connmark ! --mark 0x0/0x3fff -m conntrack --ctdir REPLY -j SYMROUTE-OUT"],
  );
  const pre = script.split("\n").filter((l) => l.startsWith("-A SYMROUTE-PRE "));
  assert.deepEqual(pre.map(strip), [
    "-A SYMROUTE-PRE -j CONNMARK --restore-mark --nfmask 0x3fff --ctmask 0x3fff",
  ]);
  // The earlier layout's dispatch chain for new connections is declared (so emptied) and removed.
  assert.match(script, /^:SYMROUTE-NEW - \[0:0\]$/m);
  assert.match(script, /^-X SYMROUTE-NEW$/m);
  const classify = script.split("\n").filter((l) => l.startsWith("-A SYMROUTE-CLASSIFY "));
  assert.deepEqual(
    classify.map((l) => l.replace(/ -m comment --comment "[^"]*"/, "")),
    [
      `-A SYMROUTE-CLASSIFY -j SET --map-set ${classifySet} dst,src --map-mark`,
      "-A SYMROUTE-CLASSIFY -m mark --mark 0x0/0x3fff -j RETURN",
      "-A SYMROUTE-CLASSIFY -j CONNMARK --save-mark --nfmask 0x3fff --ctmask 0x3fff",
      "-A SYMROUTE-CLASSIFY -j MARK --set-xmark 0x0/0x3fff",
    ],
  );
  // Each element carries the network's value under symroute's mask.
  const set = ipsetsOf(s)[0];
  assert.ok(
    set?.elements.includes("100.64.0.0/24,ext0 skbmark 0x1/0x3fff"),
    set?.elements.slice(0, 3).join(),
  );
  // Without networks the chain is declared (so emptied) and removed, and no set is filled.
  const none = renderIptables(undefined, 4, new Set());
  assert.match(none, /^:SYMROUTE-CLASSIFY - \[0:0\]$/m);
  assert.match(none, /^-X SYMROUTE-CLASSIFY$/m);
  assert.equal(renderIpsetFill(undefined), undefined);
});

test("ipset payloads: each set filled aside and swapped in; stale sets destroyed after the rules", () => {
  const s = spec(3, "iptables");
  const fill = renderIpsetFill(s) ?? "";
  const [name] = ipsetsOf(s).map((x) => x.name);
  const lines = fill.split("\n");
  assert.deepEqual(lines.slice(0, 2), [
    `create ${name}-t hash:net,iface family inet skbinfo`,
    `flush ${name}-t`,
  ]);
  assert.ok(lines.includes(`swap ${name}-t ${name}`) && lines.includes(`destroy ${name}-t`));
  // A changed pool is a new set name (so new rule keys); the old set goes.
  const changed = spec(4, "iptables");
  assert.notEqual(ipsetsOf(changed)[0]?.name, name);
  assert.equal(renderIpsetRemove(changed, [name as string]), `destroy ${name}\n`);
  assert.equal(renderIpsetRemove(s, [name as string]), undefined);
  // Only names symroute could have made go back into a payload.
  assert.throws(() => renderIpsetRemove(undefined, ["symroute-x\ncreate y"]));
});

test("iptables guards: packets of unguarded interfaces do no set lookup (dispatch by -i first)", () => {
  const script = renderIptables(guarded(10), 4, new Set());
  // The guards' jumps come first in PREROUTING, each behind its `-i` test, as jumps (a goto would
  // skip the classify and restore rules after it for the packets a guard lets through).
  const prerouting = script.split("\n").filter((l) => /^-[AI] PREROUTING /.test(l));
  assert.deepEqual(
    prerouting
      .reverse()
      .slice(0, 2)
      .map((l) => l.replace(/ -m comment --comment "[^"]*"/, "")),
    ["-I PREROUTING 1 -i ext0 -j SYMROUTE-G-ext0", "-I PREROUTING 1 -i ext1 -j SYMROUTE-G-ext1"],
  );
  assert.equal(script.split("\n").filter((l) => l.startsWith("-A SYMROUTE-PRE ")).length, 1);
  // The earlier layout's dispatch chain is declared (so emptied) and removed.
  assert.match(script, /^:SYMROUTE-GUARD - \[0:0\]$/m);
  assert.match(script, /^-X SYMROUTE-GUARD$/m);
  const [, guardSet] = ipsetsOf(guarded(10)).map((x) => x.name);
  const ext0 = script.split("\n").filter((l) => l.startsWith("-A SYMROUTE-G-ext0 "));
  // A guarded pool interface classifies its new connections from its guard chain: one `-i` test
  // in PREROUTING for both.
  assert.match(ext0[0] ?? "", /^-A SYMROUTE-G-ext0 -m conntrack --ctstate NEW .*-j SYMROUTE-CLASSIFY$/);
  assert.match(ext0[1] ?? "", new RegExp(`-m set --match-set ${guardSet} dst,src .*-j RETURN$`));
  assert.match(ext0[2] ?? "", /-m rpfilter --invert .*-j DROP$/);
  assert.equal(prerouting.filter((l) => l.includes(" -i ext0 ")).length, 1, prerouting.join("\n"));
  // An interface without pools checks sources without a set lookup.
  const noPools: FirewallSpec = {
    ...guarded(10),
    guards: [{ family: 4, iif: "eth0", mode: "loose", exempt: [], reason: "r" }],
  };
  const eth0 = renderIptables(noPools, 4, new Set())
    .split("\n")
    .filter((l) => l.startsWith("-A SYMROUTE-G-eth0 "));
  assert.equal(eth0.length, 1, eth0.join("\n"));
  assert.match(eth0[0] ?? "", /-m rpfilter --loose --invert/);
});
