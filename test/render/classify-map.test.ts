// Classification of new connections in nftables is one verdict-map lookup per family, however many
// networks (KERNEL-FACTS 12); the keys still change with any element, which is how drift and
// ownership see a changed pool.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  classifyForm,
  firewallRuleKeys,
  type FirewallSpec,
  type MarkEntry,
} from "../../src/model/firewall.ts";
import { renderIptables, renderNft } from "../../src/render/firewall-scripts.ts";

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

for (const n of [1, 10, 1000]) {
  test(`${n} network(s): the prerouting chain holds one classify rule per family, not one per network`, () => {
    const s = spec(n);
    const script = renderNft(s);
    const pre = rulesOf(script, "pre");
    const classify = pre.filter((l) => l.includes("ct state new"));
    assert.equal(classify.length, 2, classify.join("\n"));
    assert.match(
      classify[0] ?? "",
      /^ {4}ct state new iifname \. ip daddr vmap \{ "ext0" \. 100\.64\.0\.0\/24 : jump c0x1/,
    );
    assert.match(
      classify[1] ?? "",
      /^ {4}ct state new iifname \. ip6 daddr vmap \{ "ext0" \. 2001:db8::\/64 : jump c0x1/,
    );
    assert.equal((classify[0]?.match(/ : jump c0x/g) ?? []).length, n);
    // One small chain per mark value, each keeping the bits outside the mask.
    for (const v of [1, n]) {
      const hex = `0x${v.toString(16)}`;
      assert.deepEqual(
        rulesOf(script, `c${hex}`).map((l) => l.replace(/ comment .*/, "").trim()),
        [`ct mark set ct mark and 0xffffc000 or ${hex}`],
      );
    }
    assert.equal(script.includes("chain classify"), false);
    // The reply side is unchanged: one dispatch by mark.
    assert.equal(rulesOf(script, "restore").length, 1);
  });
}

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

test("plan names the form: a map for nftables, a rule list for iptables", () => {
  assert.equal(classifyForm(undefined), undefined);
  assert.equal(classifyForm({ backend: "nftables", mask: 0xff, entries: [] }), undefined);
  const nft = classifyForm(spec(10));
  assert.equal(nft?.form, "map");
  assert.match(nft?.text ?? "", /one verdict-map lookup on iifname \. ip daddr \/ ip6 daddr/);
  const ipt = classifyForm(spec(10, "iptables"));
  assert.equal(ipt?.form, "rules");
  assert.equal(ipt?.size, 11);
});

test("a bad word in an entry is refused, naming it", () => {
  const bad = {
    ...spec(2),
    entries: [{ network: "x", family: 4 as const, iif: "ext0", pools: ["1.2.3.0/24 }"], value: 1 }],
  };
  assert.throws(() => renderNft(bad));
});

test("iptables: only new connections jump to the classify list; the rest of PREROUTING's path is constant", () => {
  const script = renderIptables(spec(100, "iptables"), 4, new Set());
  const pre = script.split("\n").filter((l) => l.startsWith("-A SYMROUTE-PRE "));
  assert.equal(pre.length, 2, pre.join("\n"));
  assert.match(pre[0] ?? "", /--ctstate NEW .* -j SYMROUTE-CLASSIFY$/);
  const classify = script.split("\n").filter((l) => l.startsWith("-A SYMROUTE-CLASSIFY "));
  assert.equal(classify.length, 100);
  assert.equal(classify.filter((l) => l.includes("conntrack")).length, 0);
  // Without networks the chain is declared (so emptied) and removed.
  const none = renderIptables(undefined, 4, new Set());
  assert.match(none, /^:SYMROUTE-CLASSIFY - \[0:0\]$/m);
  assert.match(none, /^-X SYMROUTE-CLASSIFY$/m);
});
