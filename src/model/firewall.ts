// The connection-mark firewall (KERNEL-FACTS 4) in one table or chain set of symroute's own:
// new connections arriving for a pool get the network's mark value in the connection mark; replies
// get it restored into the packet mark, which `ip rule fwmark V/MASK` turns into the network's table.
// Each rule carries a comment key, which is how the observer reads ownership and drift back.
// Beside the marks: anti-spoofing guards on the pools' interfaces (KERNEL-FACTS 11) and ARP probes
// from interfaces without an address in a next hop's subnet (KERNEL-FACTS 10), in nft's own `arp`
// table whichever front end holds the rest (iptables has no ARP output hook of its own).
// Here: what the firewall holds, as rules with their keys (plan compares keys, render writes the
// rules as `nft -f` and `iptables-restore` scripts in src/render/firewall-scripts.ts).

import type { Family } from "./address.ts";
import { fnv1aOfLines } from "./keys.ts";
import { markValueForIndex } from "./marks.ts";
import type { FirewallBackend } from "./state.ts";
import { cidrToken, commentToken, hexToken, ifnameToken } from "./tokens.ts";
import { counted } from "./plural.ts";

/** One connection-marking entry: new connections arriving on `iif` for `pools` get `value`. */
export interface MarkEntry {
  readonly network: string;
  readonly family: Family;
  readonly iif: string;
  readonly pools: readonly string[];
  readonly value: number;
}

/**
 * Anti-spoofing for a pool's interface whose effective rp_filter symroute lowers (KERNEL-FACTS 5,
 * 11), or for IPv6, which has no rp_filter: a packet arriving on `iif` whose source would not be
 * routed back (strict: out of `iif`; loose: anywhere) is dropped, unless it is addressed to one of
 * `exempt` (the pools on that interface).
 */
export interface SpoofGuard {
  readonly family: Family;
  readonly iif: string;
  readonly mode: "strict" | "loose";
  /** Canonical prefixes: the pools on `iif` of this family. */
  readonly exempt: readonly string[];
  /** One line in plain words: why this guard (shown by `plan`). */
  readonly reason: string;
}

/**
 * ARP requests leaving `oif` for one of `targets` go out as RFC 5227 probes (sender 0.0.0.0), so
 * that a router that checks ARP senders answers a node whose `oif` has no address in the target's
 * subnet (KERNEL-FACTS 10). The kernel's neighbour state machine is untouched.
 */
export interface ArpProbe {
  readonly oif: string;
  /** Canonical IPv4 prefixes (a gateway is a /32). */
  readonly targets: readonly string[];
  /** One line in plain words: why these probes (shown by `plan`). */
  readonly reason: string;
}

export interface FirewallSpec {
  readonly backend: FirewallBackend;
  readonly mask: number;
  readonly entries: readonly MarkEntry[];
  /** Anti-spoofing guards; undefined (a state file written before they existed): none. */
  readonly guards?: readonly SpoofGuard[];
  /** ARP probes; undefined (a state file written before they existed): none. */
  readonly arpProbes?: readonly ArpProbe[];
}

export const NFT_TABLE = "symroute";
/**
 * `pre`'s priority: right after conntrack (-200), before anything else can set a new connection's
 * ct mark (mangle is -150, dstnat -100), and before routing.
 */
export const NFT_PRE_PRIORITY = -199;
/** The restore of replies' marks, jumped to from PREROUTING by packets of marked connections only. */
export const IPT_PRE = "SYMROUTE-PRE";
/** The same for locally generated replies, from OUTPUT. */
export const IPT_OUT = "SYMROUTE-OUT";
/** The classify rules, jumped to from PREROUTING by new connections on a pool's interface only. */
export const IPT_CLASSIFY = "SYMROUTE-CLASSIFY";
/**
 * The new connections' dispatch chain of an earlier layout (one `-i IF -g SYMROUTE-CLASSIFY` per
 * pool interface, jumped to from SYMROUTE-PRE): declared and removed by every payload, so that an
 * upgrade takes it away. The `-i` tests are in PREROUTING now.
 */
export const IPT_NEW = "SYMROUTE-NEW";
/**
 * The guards' dispatch chain of an earlier layout (jumped to from PREROUTING): declared and removed
 * by every payload, so that an upgrade takes it away. The dispatch is in PREROUTING now.
 */
export const IPT_GUARD = "SYMROUTE-GUARD";
export const iptGuardChain = (ifname: string): string => `SYMROUTE-G-${ifnameToken(ifname)}`;
/** Every chain of symroute's in iptables starts so. */
export const IPT_CHAIN_PREFIX = "SYMROUTE-";
/** Keys of rules in nft's `table arp symroute` carry this prefix in the owned-firewall lists. */
export const ARP_KEY_PREFIX = "arp:";

export interface FirewallRule {
  readonly chain: string;
  readonly body: string;
  readonly key: string;
  readonly family?: Family;
  /** nftables: the rule's table is `netdev symroute` (guards, classify) rather than `inet symroute`. */
  readonly table?: "netdev";
  /** nftables, netdev table: the chain is a base chain at ingress of this device. */
  readonly device?: string;
}

/** A rule's comment key: its label and a digest of its chain and body. */
export const freshKeyOf = (label: string, chain: string, body: string): string =>
  commentToken(`${label.slice(0, 100)} #${fnv1aOfLines(chain, body)}`);

/**
 * Keys computed lately, by body, then chain and label. Every plan builds the rules of a new spec, and
 * hashing each rule's text again took a warm reconcile at 1,000 networks about 10 ms under the
 * agent's `--lite-mode` (an interpreted loop per character); a body seen lately is one native string
 * hash instead. Two generations, the older dropped when the newer holds MEMO_CHARS of bodies: a
 * bound on what it keeps, and what a plan no longer builds goes within two. Only ever the value
 * freshKeyOf gives (test/model/key-memo.test.ts).
 */
const MEMO_CHARS = 1 << 19;
let recentKeys = new Map<string, Map<string, string>>();
let olderKeys = new Map<string, Map<string, string>>();
let recentChars = 0;

export function keyOf(label: string, chain: string, body: string): string {
  const inner = `${chain}\n${label}`;
  const known = recentKeys.get(body)?.get(inner);
  if (known !== undefined) return known;
  const key = olderKeys.get(body)?.get(inner) ?? freshKeyOf(label, chain, body);
  if (recentChars + body.length > MEMO_CHARS) {
    olderKeys = recentKeys;
    recentKeys = new Map();
    recentChars = 0;
  }
  let byInner = recentKeys.get(body);
  if (byInner === undefined) {
    byInner = new Map();
    recentKeys.set(body, byInner);
    recentChars += body.length;
  }
  byInner.set(inner, key);
  return key;
}

const byValue = (entries: readonly MarkEntry[]): Map<number, string> => {
  const names = new Map<number, string>();
  for (const e of entries) if (!names.has(e.value)) names.set(e.value, e.network);
  return names;
};

// A plan asks for the rules of one spec twice (the diff's keys, then the payload): hashing every
// rule's text is the expensive part at thousands of networks, so each spec's rules are built once.
// Specs are immutable, and a WeakMap lets them go with the plan.
function oncePerSpec<T>(build: (spec: FirewallSpec) => T): (spec: FirewallSpec) => T {
  const built = new WeakMap<FirewallSpec, T>();
  return (spec) => {
    let value = built.get(spec);
    if (value === undefined) {
      value = build(spec);
      built.set(spec, value);
    }
    return value;
  };
}

const nftRulesOfSpec = oncePerSpec<readonly FirewallRule[]>(buildNftRules);

export function nftRules(spec: FirewallSpec): readonly FirewallRule[] {
  return nftRulesOfSpec(spec);
}

function buildNftRules(spec: FirewallSpec): FirewallRule[] {
  const mask = hexToken(spec.mask);
  const keep = hexToken(~spec.mask >>> 0);
  const rules: FirewallRule[] = [];
  const add = (chain: string, body: string, label: string): void => {
    rules.push({ chain, body, key: keyOf(label, chain, body) });
  };
  rules.push(...nftGuardRules(spec));
  if (spec.entries.length === 0) return rules;
  const networkOfValue = byValue(spec.entries);
  // Classification is one lookup per new connection whatever the number of networks (KERNEL-FACTS
  // 12), and packets of other interfaces make none: a base chain at ingress of each pool's
  // interface (netdev table), which only that device's packets enter, tags them with the
  // interface's number in symroute's bits of the packet mark (no lookup, so that the packets of a
  // pool's established connections pay little). `pre` costs a packet of any other interface one
  // test of the packet mark: a lookup there (the interface's name, then a hash) was most of what
  // symroute cost every new flow through the node (docs/architecture.md). `pre` runs right after
  // conntrack (NFT_PRE_PRIORITY), where a new connection's ct mark is still 0 (no other hook has
  // run on it; a related connection, which inherits its master's, is not new): the interface's
  // chain writes the network's value, looked up by destination, as the whole ct mark, with no
  // other bits to keep and no chain per value. Only while the ct mark is 0: the later packets of a
  // UDP flow are new too, and other components may have set their bits on the first. Every tagged
  // packet loses the tag before routing, so that the request is routed as before.
  const byIf = entriesByInterface(spec.entries);
  let tag = 0;
  const dispatch: [string, number][] = [];
  for (const [iif, list] of byIf) {
    const ingress = nftTagChain(iif);
    const addIngress = (body: string, label: string): void => {
      rules.push({ chain: ingress, body, key: keyOf(label, ingress, body), table: "netdev", device: iif });
    };
    // As the guard's: frames the device hands to a VLAN or another MAC address on top of it are
    // received there, and tagged by that interface's own chain if it has pools.
    addIngress("vlan id != 0 return", `${iif} tag: frames for its VLANs`);
    addIngress("meta pkttype other return", `${iif} tag: frames for other hosts`);
    tag += 1;
    // The interface's number spread over the mask's bits, as network values are: written raw, a
    // mask without bit 0 (0xfe, 0xff00) would put the tag outside symroute's bits, and no
    // connection would ever be classified (test/cli/mark-move.e2e.test.ts).
    const tagValue = markValueForIndex(tag, spec.mask);
    // Each interface here has a marked network, and the allocator gives no more marks than fit.
    if (tagValue === undefined)
      throw new Error(`interface tag ${tag} does not fit in mask ${hexToken(spec.mask)}`);
    addIngress(`meta mark set meta mark and ${keep} or ${hexToken(tagValue)}`, `${iif} tag`);
    dispatch.push([iif, tagValue]);
    const chain = nftClassifyChain(iif);
    for (const family of [4, 6] as const) {
      const elements: string[] = [];
      for (const e of list) {
        if (e.family !== family) continue;
        for (const pool of e.pools) elements.push(`${cidrToken(pool)} : ${hexToken(e.value)}`);
      }
      if (elements.length === 0) continue;
      const ip = family === 4 ? "ip" : "ip6";
      add(chain, `ct mark set ${ip} daddr map { ${elements.join(", ")} }`, `${iif} classify IPv${family}`);
    }
  }
  if (dispatch.length > 0) {
    add("pre", `meta mark and ${mask} != 0 jump tagged`, "classify tagged packets");
    add("tagged", "ct state new ct mark 0 jump classify", "classify new connections");
    add("tagged", `meta mark set meta mark and ${keep}`, "untag before routing");
    // One test per pool interface (not per network), walked by tagged new connections only.
    for (const [iif, t] of dispatch)
      add(
        "classify",
        `meta mark and ${mask} == ${hexToken(t)} goto ${nftClassifyChain(iif)}`,
        `${iif} tagged`,
      );
  }
  add("pre", `ct direction reply ct mark and ${mask} != 0 jump restore`, "restore mark on replies");
  add("out", `ct direction reply ct mark and ${mask} != 0 jump restore`, "restore mark on local replies");
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

/** The guard's chain of an interface, in the `netdev` table, hooked at that interface's ingress. */
export const nftGuardChain = (iif: string): string => `guard_${ifnameToken(iif)}`;

/**
 * The guards (nftables): one base chain per guarded interface in `table netdev symroute`, hooked at
 * ingress of that device only, so that packets arriving on any other interface never meet them (a
 * `prerouting` chain is entered by every packet of every interface). `fib` is refused in an `inet`
 * ingress chain (6.18: "Operation not supported"), accepted in a `netdev` one. Ingress comes before
 * defragmentation: each fragment is checked by its addresses, which all fragments share.
 */
function nftGuardRules(spec: FirewallSpec): FirewallRule[] {
  const rules: FirewallRule[] = [];
  for (const [iif, list] of guardsByInterface(spec.guards ?? [])) {
    const chain = nftGuardChain(iif);
    const add = (body: string, label: string): void => {
      rules.push({ chain, body, key: keyOf(label, chain, body), table: "netdev", device: iif });
    };
    // Ingress of a device also sees what the stack hands to devices stacked on it: frames tagged for
    // one of its VLANs (the tag is already out of the packet, so they look like IP) and frames for
    // another MAC address (a macvlan's). The stack receives neither on this interface, so a
    // `prerouting` guard of it never saw them: they go on, to the VLAN's own guard or rp_filter.
    // VLAN 0 (priority tagged) stays checked: the stack receives those on this interface.
    add("vlan id != 0 return", `${iif} frames for its VLANs`);
    add("meta pkttype other return", `${iif} frames for other hosts`);
    for (const g of list) {
      const ip = g.family === 4 ? "ip" : "ip6";
      if (g.exempt.length > 0)
        add(`${ip} daddr { ${g.exempt.map(cidrToken).join(", ")} } return`, `${iif} v${g.family} pools`);
      if (g.family === 4) {
        // As rp_filter and xt_rpfilter: DHCP-style packets from 0.0.0.0 are not checked.
        add("ip saddr 0.0.0.0 ip daddr 255.255.255.255 return", `${iif} v4 dhcp`);
      } else {
        // Neighbour discovery comes from link-local or unspecified sources fib cannot vouch for.
        add(
          "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } return",
          `${iif} v6 neighbour discovery`,
        );
      }
      const lookup = g.mode === "strict" ? "fib saddr . iif oif missing" : "fib saddr oif missing";
      // `meta nfproto` exists only in the inet family; in netdev the link-layer protocol says it.
      add(`meta protocol ${ip} ${lookup} drop`, `${iif} v${g.family} ${g.mode} source check`);
    }
  }
  return rules;
}

/**
 * An interface's classify chain (inet table: its pools' values by destination). Interface names
 * are unique and every character ifnameToken lets through may follow a letter in an nft identifier
 * (checked against nft for odd names), so the name is collision-free; no other chain of the table
 * starts so.
 */
export const nftClassifyChain = (iif: string): string => `classify_${ifnameToken(iif)}`;

/** An interface's tag chain: netdev table, at ingress of that device. */
export const nftTagChain = (iif: string): string => `tag_${ifnameToken(iif)}`;

/** Entries by incoming interface, in order of first appearance (so the rendering is stable). */
function entriesByInterface(entries: readonly MarkEntry[]): Map<string, MarkEntry[]> {
  const byIf = new Map<string, MarkEntry[]>();
  for (const e of entries) {
    if (e.pools.length === 0) continue;
    const list = byIf.get(e.iif);
    if (list === undefined) byIf.set(e.iif, [e]);
    else list.push(e);
  }
  return byIf;
}

function guardsByInterface(guards: readonly SpoofGuard[]): Map<string, SpoofGuard[]> {
  const byIf = new Map<string, SpoofGuard[]>();
  for (const g of [...guards].sort((a, b) => a.family - b.family)) {
    const list = byIf.get(g.iif);
    if (list === undefined) byIf.set(g.iif, [g]);
    else list.push(g);
  }
  return byIf;
}

/**
 * The ARP probe rule: requests leaving an interface for a target in the set go out with sender
 * 0.0.0.0. One set keyed by interface and target, so the cost does not grow with networks. The
 * label names the front end whose objects it belongs with, which is how the reader attributes it.
 */
export function arpRules(spec: FirewallSpec): FirewallRule[] {
  const probes: readonly ArpProbe[] = spec.arpProbes ?? [];
  if (probes.length === 0) return [];
  const elements = probes.flatMap((p) => p.targets.map((t) => `"${ifnameToken(p.oif)}" . ${cidrToken(t)}`));
  const chain = "probes";
  const body = `arp operation request oifname . arp daddr ip { ${elements.join(", ")} } arp saddr ip set 0.0.0.0`;
  return [{ chain, body, key: keyOf(`${spec.backend} arp probes`, chain, body) }];
}

/** Which front end an ARP rule's key (without ARP_KEY_PREFIX) belongs with. */
export const arpKeyBackend = (key: string): "nftables" | "iptables" =>
  key.startsWith("iptables ") ? "iptables" : "nftables";

export interface IptablesRule extends FirewallRule {
  readonly match: string;
  readonly target: string;
}

/** iptables' own chains, which symroute's chains are jumped to from. */
export const BUILTIN = new Set(["PREROUTING", "OUTPUT"]);

/** symroute's ipsets start so (the kernel allows set names of at most 31 characters). */
export const IPSET_PREFIX = "symroute-";
/** Keys of symroute's ipsets in the iptables front end's owned-firewall lists carry this prefix. */
export const IPSET_KEY_PREFIX = "ipset:";

/**
 * An ipset of the iptables front end (`hash:net,iface`): one lookup per packet whatever the number
 * of pools. Its name carries a digest of its content, so a change of content is a new set that the
 * rules switch to in one iptables-restore transaction, and the rules' keys change with it.
 */
export interface IpSet {
  readonly name: string;
  /** `classify`: new connections' mark by pool and interface; `guard`: the pools the guards exempt. */
  readonly purpose: "classify" | "guard";
  readonly family: Family;
  /** Elements carry a mark value/mask (`skbinfo`), which `-j SET --map-mark` puts in the packet mark. */
  readonly skbinfo: boolean;
  /** `prefix,ifname[ skbmark V/M]`, as `ipset restore` takes them. */
  readonly elements: readonly string[];
}

const ipsetsOfSpec = oncePerSpec<readonly IpSet[]>(buildIpsets);

/** The ipsets an iptables spec needs: per family, one for classify and one for the guards' pools. */
export function ipsetsOf(spec: FirewallSpec | undefined): readonly IpSet[] {
  if (spec === undefined || spec.backend !== "iptables") return [];
  return ipsetsOfSpec(spec);
}

function buildIpsets(spec: FirewallSpec): IpSet[] {
  const mask = hexToken(spec.mask);
  const sets: IpSet[] = [];
  const make = (kind: "c" | "g", family: Family, skbinfo: boolean, elements: string[]): void => {
    if (elements.length === 0) return;
    const digest = fnv1aOfLines(`${kind}${family}${skbinfo ? " skbinfo" : ""}`, elements.join("\n"));
    const purpose = kind === "c" ? "classify" : "guard";
    sets.push({ name: `${IPSET_PREFIX}${kind}${family}-${digest}`, purpose, family, skbinfo, elements });
  };
  for (const family of [4, 6] as const) {
    const classify: string[] = [];
    for (const e of spec.entries) {
      if (e.family !== family) continue;
      const iif = ifnameToken(e.iif);
      const mark = ` skbmark ${hexToken(e.value)}/${mask}`;
      for (const pool of e.pools) classify.push(`${cidrToken(pool)},${iif}${mark}`);
    }
    make("c", family, true, classify);
    const exempt: string[] = [];
    for (const g of spec.guards ?? []) {
      if (g.family !== family) continue;
      const iif = ifnameToken(g.iif);
      for (const pool of g.exempt) exempt.push(`${cidrToken(pool)},${iif}`);
    }
    make("g", family, false, exempt);
  }
  return sets;
}

export function iptablesRules(spec: FirewallSpec, family: Family): IptablesRule[] {
  const mask = hexToken(spec.mask);
  const rules: IptablesRule[] = [];
  const add = (chain: string, match: string, target: string, label: string): void => {
    const body = `${match} ${target}`.trim();
    rules.push({ chain, body, match, target, key: keyOf(label, chain, body), family });
  };
  const sets = ipsetsOf(spec).filter((s) => s.family === family);
  // `dst,src` on hash:net,iface: the destination address and the incoming interface.
  const setOf = (purpose: IpSet["purpose"]): string | undefined =>
    sets.find((s) => s.purpose === purpose)?.name;
  const classifySet = setOf("classify");
  const guards = (spec.guards ?? []).filter((g) => g.family === family);
  if (classifySet === undefined && guards.length === 0) return rules;
  // Every packet of every interface walks mangle PREROUTING, and iptables-nft (1.8.9) turns only
  // `-i`, `-m mark` and addresses/ports into nft expressions of its own: `-m conntrack`,
  // `-m connmark`, `-m set`, `-m comment` and the MARK/CONNMARK/SET targets each run through
  // nft_compat, and every rule that matches counts into its counter. So the rules a packet of an
  // interface without pools meets are in PREROUTING itself, each starting with the cheapest test
  // that turns such a packet away: one `-i` test per guarded or pool interface (native, but it
  // copies the interface's name: measured, a failing one costs about as much as the connmark
  // match, 1-1.5% of a packet through another interface), then one connmark test (the only xt
  // match it meets); the comment (the key) and the counter come after the tests, so they cost
  // only the packets that pass (docs/architecture.md).
  // The guards first, in mangle before nat's DNAT: the destination is still the pool's address. A
  // jump, not a goto: the rules after it still see the packets the guard lets through. A guarded
  // interface's new connections are classified from its guard chain (below), behind the same test.
  for (const g of guards)
    add("PREROUTING", `-i ${ifnameToken(g.iif)}`, `-j ${iptGuardChain(g.iif)}`, guardJumpLabel(g.iif));
  const guarded = new Set(guards.map((g) => g.iif));
  const poolInterfaces = new Set(
    classifySet === undefined ? [] : spec.entries.filter((e) => e.family === family).map((e) => e.iif),
  );
  if (classifySet !== undefined) {
    // One set lookup per new connection on a pool's interface, whatever the number of networks;
    // a packet of any other interface meets the interface test only.
    for (const iif of poolInterfaces) {
      if (guarded.has(iif)) continue;
      add(
        "PREROUTING",
        `-i ${ifnameToken(iif)} -m conntrack --ctstate NEW`,
        `-j ${IPT_CLASSIFY}`,
        classifyJumpLabel(iif),
      );
    }
    // Replies of the connections symroute marked get the mark back: the connmark test turns away
    // the packets of every other connection, the direction test the requests of marked ones (the
    // flows symroute exists for), both before the comment, the counter and the jump.
    for (const local of [false, true]) {
      const r = restoreJump({ local, mask, testsDirection: true });
      add(r.chain, r.match, r.target, r.label);
    }
    // The one set lookup: a hit puts the element's value in symroute's bits of the packet mark (the
    // others kept), a miss changes nothing. Those bits are 0 here (the mask is symroute's, and
    // symroute sets them in prerouting only for replies, never for a new connection), so a value in
    // them says that the set held the packet's pool: it goes into the connection mark (its other
    // bits kept), and the packet mark gets its bits back to zero, so that the request itself is
    // routed as before.
    add(IPT_CLASSIFY, "", `-j SET --map-set ${classifySet} dst,src --map-mark`, "mark from the set");
    add(IPT_CLASSIFY, `-m mark --mark 0x0/${mask}`, "-j RETURN", "not a pool");
    add(IPT_CLASSIFY, "", `-j CONNMARK --save-mark --nfmask ${mask} --ctmask ${mask}`, "save mark");
    add(IPT_CLASSIFY, "", `-j MARK --set-xmark 0x0/${mask}`, "clear the packet mark");
    const restore = `-j CONNMARK --restore-mark --nfmask ${mask} --ctmask ${mask}`;
    add(IPT_PRE, "", restore, "restore mark on replies");
    add(IPT_OUT, "", restore, "restore mark on local replies");
  }
  if (guards.length > 0) {
    const guardSet = setOf("guard");
    for (const g of guards) {
      const chain = iptGuardChain(g.iif);
      // Before the guard's own rules: the pools' exemption returns from the chain. A spoofed new
      // connection classified here is dropped just after, and its conntrack entry with it (never
      // confirmed).
      if (poolInterfaces.has(g.iif))
        add(chain, "-m conntrack --ctstate NEW", `-j ${IPT_CLASSIFY}`, `${g.iif} new connections`);
      if (guardSet !== undefined && g.exempt.length > 0)
        add(chain, `-m set --match-set ${guardSet} dst,src`, "-j RETURN", `${g.iif} pools exempt`);
      if (family === 6) {
        for (const type of ["neighbour-solicitation", "neighbour-advertisement", "router-advertisement"])
          add(chain, `-p ipv6-icmp -m icmp6 --icmpv6-type ${type}`, "-j RETURN", `${g.iif} ${type}`);
      }
      const loose = g.mode === "loose" ? " --loose" : "";
      add(chain, `-m rpfilter${loose} --invert`, "-j DROP", `${g.iif} v${family} ${g.mode} source check`);
    }
  }
  return rules;
}

// The labels of the rules in the built-in chains name what their bodies depend on (an interface,
// the mask), so that a rule no longer wanted is found again from its key alone (knownJumps) and
// deleted with its exact text, which `-D` needs.
const guardJumpLabel = (iif: string): string => `symroute guard ${iif}`;
const classifyJumpLabel = (iif: string): string => `symroute classify ${iif}`;
/** A form of the replies' jump into SYMROUTE-PRE from PREROUTING, or (`local`) SYMROUTE-OUT from OUTPUT. */
interface RestoreJumpForm {
  readonly local: boolean;
  readonly mask: string;
  /** Also `--ctdir REPLY` (the current form); without it, the first form, deleted on upgrade. */
  readonly testsDirection: boolean;
}

/**
 * The replies' jump of a form, with its label. Each form has a label of its own (a key names one
 * body): `replies` was the first, which tested the direction in SYMROUTE-PRE.
 */
const restoreJump = ({
  local,
  mask,
  testsDirection,
}: RestoreJumpForm): { chain: string; match: string; target: string; label: string } => ({
  chain: local ? "OUTPUT" : "PREROUTING",
  match: `-m connmark ! --mark 0x0/${mask}${testsDirection ? " -m conntrack --ctdir REPLY" : ""}`,
  target: `-j ${local ? IPT_OUT : IPT_PRE}`,
  label: `symroute ${local ? "local " : ""}${testsDirection ? "restore" : "replies"} ${mask}`,
});
const INTERFACE_JUMP_KEY = /^symroute (guard|classify) (\S+) #[0-9a-f]+$/;
const RESTORE_JUMP_KEY = /^symroute (local )?(replies|restore) (0x[0-9a-f]{1,8}) #[0-9a-f]+$/;

/**
 * The guard chain (SYMROUTE-G-IF) a key names: the guard's jump from PREROUTING, or its dispatch
 * rule in SYMROUTE-PRE of the layout before. The renderer declares and removes such chains when no
 * longer wanted.
 */
export function guardChainOfKey(key: string): string | undefined {
  const before = GUARD_KEY.exec(key);
  if (before !== null) return iptGuardChain(before[1] as string);
  const jump = INTERFACE_JUMP_KEY.exec(key);
  return jump !== null && jump[1] === "guard" ? iptGuardChain(jump[2] as string) : undefined;
}

/** The label of a guard's dispatch rule in SYMROUTE-PRE before the jumps moved to PREROUTING. */
export const GUARD_KEY = /^guard (\S+) #/;

/** The families whose iptables objects a spec asks for. */
export const familiesOf = (spec: FirewallSpec | undefined): Family[] =>
  spec === undefined
    ? []
    : ([4, 6] as const).filter(
        (f) => spec.entries.some((e) => e.family === f) || (spec.guards ?? []).some((g) => g.family === f),
      );

/** A rule of the built-in chains (the match and target as iptablesRules renders them). */
const builtinRule = (
  chain: string,
  match: string,
  target: string,
  label: string,
  family: Family,
): IptablesRule => {
  const body = `${match} ${target}`.trim();
  return { chain, match, target, body, key: keyOf(label, chain, body), family };
};

/**
 * The rules of symroute's in the built-in chains that `presentKeys` (the keys on the node) name,
 * whatever the spec: how stale ones are recognised and deleted. The rules of the layouts before
 * (one unconditional jump each from PREROUTING and OUTPUT, and the guards' own) are known by their
 * fixed keys; the current ones, whose bodies depend on an interface or the mask, are rebuilt from
 * their keys' labels (a label whose interface or mask is not a valid token names no rule of ours).
 */
export function knownJumps(family: Family, presentKeys: Iterable<string> = []): IptablesRule[] {
  const rules = [
    builtinRule("PREROUTING", "", `-j ${IPT_PRE}`, "symroute prerouting", family),
    builtinRule("OUTPUT", "", `-j ${IPT_OUT}`, "symroute output", family),
    builtinRule("PREROUTING", "", `-j ${IPT_GUARD}`, "symroute guard", family),
  ];
  for (const key of presentKeys) {
    const byInterface = INTERFACE_JUMP_KEY.exec(key);
    const restore = RESTORE_JUMP_KEY.exec(key);
    try {
      if (byInterface !== null) {
        const iif = ifnameToken(byInterface[2] as string);
        rules.push(
          byInterface[1] === "guard"
            ? builtinRule("PREROUTING", `-i ${iif}`, `-j ${iptGuardChain(iif)}`, guardJumpLabel(iif), family)
            : builtinRule(
                "PREROUTING",
                `-i ${iif} -m conntrack --ctstate NEW`,
                `-j ${IPT_CLASSIFY}`,
                classifyJumpLabel(iif),
                family,
              ),
        );
      } else if (restore !== null) {
        const r = restoreJump({
          local: restore[1] !== undefined,
          mask: hexToken(Number(restore[3])),
          testsDirection: restore[2] === "restore",
        });
        rules.push(builtinRule(r.chain, r.match, r.target, r.label, family));
      }
    } catch {
      // Not a token symroute would have written: no rule of ours to delete.
    }
  }
  return rules;
}

/**
 * The comment keys the rendered firewall carries: iptables keys per family ("4:..."), the ipsets'
 * names with IPSET_KEY_PREFIX, the ARP table's with ARP_KEY_PREFIX.
 */
export function firewallRuleKeys(spec: FirewallSpec): string[] {
  const arp = arpRules(spec).map((r) => ARP_KEY_PREFIX + r.key);
  if (spec.backend === "nftables") return [...nftRules(spec).map((r) => r.key), ...arp];
  return [
    ...familiesOf(spec).flatMap((f) => iptablesRules(spec, f).map((r) => `${f}:${r.key}`)),
    ...ipsetsOf(spec).map((s) => IPSET_KEY_PREFIX + s.name),
    ...arp,
  ];
}

/** How new connections are classified into networks: what `plan` reports. */
interface ClassifyForm {
  readonly backend: FirewallSpec["backend"];
  /**
   * One lookup per new connection whatever the number of networks: `map` (nftables) or `set`
   * (iptables with ipset); `rules`: a list walked (no longer rendered; kept in the JSON contract).
   */
  readonly form: "map" | "set" | "rules";
  /** Elements of the maps or sets: one per pool. */
  readonly size: number;
  /**
   * Lookups a new connection arriving on a pool's interface makes: 1 in either (nftables: its
   * destination in that interface's map, after one tag test per pool interface; iptables: one
   * `hash:net,iface` set).
   */
  readonly lookups: number;
  /**
   * Lookups a new connection arriving on any other interface makes: 0 in either (nftables: one test
   * of the packet mark; iptables: one `-i` test per pool interface). Absent in reports made before it.
   */
  readonly lookupsElsewhere?: number;
  /** One line in plain words. */
  readonly text: string;
}

/** The classify form of a spec; undefined when it marks nothing. */
export function classifyForm(spec: FirewallSpec | undefined): ClassifyForm | undefined {
  if (spec === undefined || spec.entries.length === 0) return undefined;
  const size = spec.entries.reduce((n, e) => n + e.pools.length, 0);
  if (spec.backend === "nftables") {
    const keys = [...new Set(spec.entries.map((e) => (e.family === 4 ? "ip daddr" : "ip6 daddr")))];
    const interfaces = new Set(spec.entries.map((e) => e.iif)).size;
    return {
      backend: spec.backend,
      form: "map",
      size,
      lookups: 1,
      lookupsElsewhere: 0,
      text: `one map lookup on ${keys.join(" / ")} per new connection tagged at ingress of a pool's interface (${counted(interfaces, "interface")}), in that interface's chain (${counted(size, "element")}), whatever the number of networks; none for connections on other interfaces`,
    };
  }
  const sets = ipsetsOf(spec).filter((x) => x.purpose === "classify");
  return {
    backend: spec.backend,
    form: "set",
    size,
    lookups: 1,
    lookupsElsewhere: 0,
    text: `one ipset lookup on destination . incoming interface (hash:net,iface ${sets.map((x) => x.name).join(", ")}) per new connection on a pool's interface (${counted(size, "element")}), whatever the number of networks; none for connections on other interfaces (one interface test per pool interface)`,
  };
}
