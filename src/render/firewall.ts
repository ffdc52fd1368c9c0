// The connection-mark firewall (KERNEL-FACTS 4) in one table or chain set of symroute's own:
// new connections arriving for a pool get the network's mark value in the connection mark; replies
// get it restored into the packet mark, which `ip rule fwmark V/MASK` turns into the network's table.
// Each rule carries a comment key, which is how the observer reads ownership and drift back.

import type { Family } from "../model/address.ts";
import { fnv1aOfLines } from "../model/keys.ts";
import type { FirewallSpec, MarkEntry } from "../plan/types.ts";
import { cidrToken, commentToken, hexToken, ifnameToken } from "./tokens.ts";

export const NFT_TABLE = "symroute";
export const IPT_PRE = "SYMROUTE-PRE";
export const IPT_OUT = "SYMROUTE-OUT";

interface FirewallRule {
  readonly chain: string;
  readonly body: string;
  readonly key: string;
  readonly family?: Family;
}

const keyOf = (label: string, chain: string, body: string): string =>
  commentToken(`${label.slice(0, 100)} #${fnv1aOfLines(chain, body)}`);

const byValue = (entries: readonly MarkEntry[]): Map<number, string> => {
  const names = new Map<number, string>();
  for (const e of entries) if (!names.has(e.value)) names.set(e.value, e.network);
  return names;
};

// A plan asks for the rules of one spec twice (the diff's keys, then the payload): hashing every
// rule's text is the expensive part at thousands of networks, so each spec's rules are built once.
// Specs are immutable, and a WeakMap lets them go with the plan.
const nftRulesOfSpec = new WeakMap<FirewallSpec, readonly FirewallRule[]>();

function nftRules(spec: FirewallSpec): readonly FirewallRule[] {
  let rules = nftRulesOfSpec.get(spec);
  if (rules === undefined) {
    rules = buildNftRules(spec);
    nftRulesOfSpec.set(spec, rules);
  }
  return rules;
}

function buildNftRules(spec: FirewallSpec): FirewallRule[] {
  const mask = hexToken(spec.mask);
  const keep = hexToken(~spec.mask >>> 0);
  const rules: FirewallRule[] = [];
  const add = (chain: string, body: string, label: string): void => {
    rules.push({ chain, body, key: keyOf(label, chain, body) });
  };
  add("pre", "ct state new jump classify", "classify new connections");
  add("pre", `ct direction reply ct mark and ${mask} != 0 jump restore`, "restore mark on replies");
  add("out", `ct direction reply ct mark and ${mask} != 0 jump restore`, "restore mark on local replies");
  // Every classify body is HEAD POOLS TAIL VALUE; heads are few (an interface and a family), so they
  // are built once rather than once per network.
  const heads: Record<Family, Map<string, string>> = { 4: new Map(), 6: new Map() };
  const headOf = (e: MarkEntry): string => {
    let head = heads[e.family].get(e.iif);
    if (head === undefined) {
      head = `iifname "${ifnameToken(e.iif)}" ${e.family === 4 ? "ip" : "ip6"} daddr { `;
      heads[e.family].set(e.iif, head);
    }
    return head;
  };
  const tail = ` } ct mark set ct mark and ${keep} or `;
  for (const e of spec.entries) {
    // Pools, interface, value: the order in which a bad word is refused.
    const pools = e.pools.map(cidrToken).join(", ");
    const head = headOf(e);
    const value = hexToken(e.value);
    const body = head + pools + tail + value;
    add("classify", body, `${e.network} v${e.family} mark ${value}`);
  }
  const networkOfValue = byValue(spec.entries);
  const values = [...networkOfValue.keys()].sort((a, b) => a - b);
  if (values.length > 0) {
    // A verdict map keeps reply handling O(1) whatever the number of networks.
    const elements = values.map((v) => `${hexToken(v)} : goto m${hexToken(v)}`).join(", ");
    add("restore", `ct mark and ${mask} vmap { ${elements} }`, "dispatch by mark");
  }
  for (const [value, network] of networkOfValue) {
    const hex = hexToken(value);
    add(`m${hex}`, `meta mark set meta mark and ${keep} or ${hex}`, `${network} restore ${hex}`);
  }
  return rules;
}

/** One `nft -f` transaction that replaces symroute's table whole (or only removes it). */
export function renderNft(spec: FirewallSpec | undefined): string {
  const lines = [`table inet ${NFT_TABLE} {}`, `delete table inet ${NFT_TABLE}`];
  if (spec === undefined) return `${lines.join("\n")}\n`;
  // Group once, in order of first appearance: one chain per mark value, so never filter per chain.
  const byChain = new Map<string, FirewallRule[]>();
  for (const r of nftRules(spec)) {
    const list = byChain.get(r.chain);
    if (list === undefined) byChain.set(r.chain, [r]);
    else list.push(r);
  }
  lines.push(`table inet ${NFT_TABLE} {`);
  for (const [chain, rules] of byChain) {
    lines.push(`  chain ${chain} {`);
    if (chain === "pre") lines.push("    type filter hook prerouting priority mangle; policy accept;");
    // Only a `route` chain re-routes a locally generated packet whose mark changed (KERNEL-FACTS 4).
    if (chain === "out") lines.push("    type route hook output priority mangle; policy accept;");
    for (const r of rules) lines.push(`    ${r.body} comment "${r.key}"`);
    lines.push("  }");
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

interface IptablesRule extends FirewallRule {
  readonly match: string;
  readonly target: string;
}

function iptablesRules(spec: FirewallSpec, family: Family): IptablesRule[] {
  const mask = hexToken(spec.mask);
  const rules: IptablesRule[] = [];
  const add = (chain: string, match: string, target: string, label: string): void => {
    const body = `${match} ${target}`.trim();
    rules.push({ chain, body, match, target, key: keyOf(label, chain, body), family });
  };
  add("PREROUTING", "", `-j ${IPT_PRE}`, "symroute prerouting");
  add("OUTPUT", "", `-j ${IPT_OUT}`, "symroute output");
  for (const e of spec.entries.filter((x) => x.family === family)) {
    for (const pool of e.pools) {
      add(
        IPT_PRE,
        `-i ${ifnameToken(e.iif)} -d ${cidrToken(pool)} -m conntrack --ctstate NEW`,
        `-j CONNMARK --set-xmark ${hexToken(e.value)}/${mask}`,
        `${e.network} mark ${hexToken(e.value)}`,
      );
    }
  }
  const restore = `-j CONNMARK --restore-mark --nfmask ${mask} --ctmask ${mask}`;
  add(IPT_PRE, "-m conntrack --ctdir REPLY", restore, "restore mark on replies");
  add(IPT_OUT, "-m conntrack --ctdir REPLY", restore, "restore mark on local replies");
  return rules;
}

// The comment sits before the target, where iptables-save prints it, so that `-D` finds the rule.
const iptablesLine = (op: string, r: IptablesRule): string =>
  [op, r.chain, r.match, `-m comment --comment "${r.key}"`, r.target].filter((w) => w !== "").join(" ");

export const familiesOf = (spec: FirewallSpec | undefined): Family[] =>
  spec === undefined ? [] : ([4, 6] as const).filter((f) => spec.entries.some((e) => e.family === f));

/**
 * One `iptables-restore --noflush` payload for a family: declaring our chains flushes them, the jumps
 * from the built-in chains are inserted only when missing (`presentKeys` from the observer), and with
 * no spec the jumps and chains are removed.
 */
export function renderIptables(
  spec: FirewallSpec | undefined,
  family: Family,
  presentKeys: ReadonlySet<string>,
): string {
  const lines = ["*mangle", `:${IPT_PRE} - [0:0]`, `:${IPT_OUT} - [0:0]`];
  const wanted = spec !== undefined && familiesOf(spec).includes(family);
  if (wanted) {
    for (const r of iptablesRules(spec, family)) {
      const builtin = r.chain === "PREROUTING" || r.chain === "OUTPUT";
      if (builtin) {
        if (!presentKeys.has(r.key)) lines.push(iptablesLine("-I", { ...r, chain: `${r.chain} 1` }));
      } else {
        lines.push(iptablesLine("-A", r));
      }
    }
  } else {
    const jumps = iptablesRules({ backend: "iptables", mask: 1, entries: [] }, family).filter(
      (r) => r.chain === "PREROUTING" || r.chain === "OUTPUT",
    );
    for (const r of jumps) if (presentKeys.has(r.key)) lines.push(iptablesLine("-D", r));
    lines.push(`-X ${IPT_PRE}`, `-X ${IPT_OUT}`);
  }
  lines.push("COMMIT");
  return `${lines.join("\n")}\n`;
}

/** The comment keys the rendered firewall carries; iptables keys are per family ("4:..."). */
export function firewallRuleKeys(spec: FirewallSpec): string[] {
  if (spec.backend === "nftables") return nftRules(spec).map((r) => r.key);
  return familiesOf(spec).flatMap((f) => iptablesRules(spec, f).map((r) => `${f}:${r.key}`));
}

/** Keys of the jump rules, which the iptables observer reports with the others. */
export function iptablesJumpKeys(family: Family): string[] {
  return iptablesRules({ backend: "iptables", mask: 1, entries: [] }, family)
    .filter((r) => r.chain === "PREROUTING" || r.chain === "OUTPUT")
    .map((r) => r.key);
}
