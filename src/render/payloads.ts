// A plan's changes -> the exact inputs of each tool, in the order the engine runs them.

import type { Family } from "../model/address.ts";
import type { NodeState } from "../model/state.ts";
import type { Change } from "../model/change.ts";
import { ARP_KEY_PREFIX, IPSET_KEY_PREFIX, familiesOf, type FirewallSpec } from "../model/firewall.ts";
import {
  renderIpsetFill,
  renderIpsetRemove,
  renderIptables,
  renderNft,
  renderNftArp,
} from "./firewall-scripts.ts";
import { renderIpBatch, renderLinkBatch, type IpBatch } from "./ip.ts";

export interface SysctlWrite {
  readonly name: string;
  readonly value: string;
  readonly changeIndex: number;
}

export type FirewallPayload =
  /** `frontEnd` "iptables": the iptables front end's ARP table (nft has the only ARP hook). */
  | { readonly tool: "nft"; readonly script: string; readonly frontEnd?: "iptables" }
  | { readonly tool: "iptables-restore"; readonly family: Family; readonly script: string }
  /** `ipset restore -exist`: the iptables front end's sets (filled before its rules, destroyed after). */
  | { readonly tool: "ipset"; readonly script: string };

export interface Payloads {
  readonly linkAdds: IpBatch;
  readonly sysctls: readonly SysctlWrite[];
  readonly ip: readonly IpBatch[];
  readonly firewall: readonly FirewallPayload[];
  readonly linkDeletes: IpBatch;
}

/**
 * Sysctl writes that raise a value go first, then those that lower one: lowering conf.all only after
 * every other interface was raised means no interface ever loses its rp_filter, even for a moment.
 */
function orderSysctls(changes: readonly Change[], pinned: Readonly<Record<string, string>>): SysctlWrite[] {
  const writes: (SysctlWrite & { up: boolean })[] = [];
  changes.forEach((c, changeIndex) => {
    if (c.kind !== "sysctl") return;
    writes.push({ name: c.name, value: c.to, changeIndex, up: Number(c.to) >= Number(c.from ?? 0) });
  });
  // Writing conf/default/X copies the value into every interface that never set X itself; so
  // default goes first, and the values we want on interfaces are written explicitly after it.
  const isDefault = (w: { name: string }): boolean => w.name.startsWith("net/ipv4/conf/default/");
  const ordered = [
    ...writes.filter(isDefault),
    ...writes.filter((w) => w.up && !isDefault(w)),
    ...writes.filter((w) => !w.up && !isDefault(w)),
  ].map(({ name, value, changeIndex }) => ({ name, value, changeIndex }));
  if (writes.some(isDefault)) {
    const written = new Set(ordered.map((w) => w.name));
    const repins = Object.entries(pinned)
      .filter(
        ([name]) => !written.has(name) && !isDefault({ name }) && !name.startsWith("net/ipv4/conf/all/"),
      )
      .map(([name, value]) => ({ name, value, changeIndex: -1 }));
    ordered.splice(writes.filter(isDefault).length, 0, ...repins);
  }
  return ordered;
}

/** The nftables front end's payload: one `nft -f` replacing symroute's inet and arp tables whole. */
export function renderNftablesPayloads(spec: FirewallSpec | undefined): FirewallPayload[] {
  return [{ tool: "nft", script: renderNft(spec) }];
}

/**
 * The iptables front end's payloads: its sets filled (`ipset restore`), one `iptables-restore` per
 * family that has or gets symroute's chains (the jumps from the built-in chains inserted only when
 * `node` lacks them), the sets no longer used destroyed, and nft's ARP table when probes are
 * wanted or were there.
 */
export function renderIptablesPayloads(spec: FirewallSpec | undefined, node: NodeState): FirewallPayload[] {
  const out: FirewallPayload[] = [];
  const observed = node.firewall.find((f) => f.backend === "iptables")?.ruleKeys ?? [];
  // The sets exist, filled, before the rules that refer to them; stale ones go after the rules
  // that referred to them (a set in use cannot be destroyed).
  const fill = renderIpsetFill(spec);
  if (fill !== undefined) out.push({ tool: "ipset", script: fill });
  for (const family of [4, 6] as const) {
    const copies = new Map<string, number>();
    for (const k of observed)
      if (k.startsWith(`${family}:`)) copies.set(k.slice(2), (copies.get(k.slice(2)) ?? 0) + 1);
    const present = new Set(copies.keys());
    if (!familiesOf(spec).includes(family) && present.size === 0) continue;
    out.push({ tool: "iptables-restore", family, script: renderIptables(spec, family, present, copies) });
  }
  const sets = observed
    .filter((k) => k.startsWith(IPSET_KEY_PREFIX))
    .map((k) => k.slice(IPSET_KEY_PREFIX.length));
  const remove = renderIpsetRemove(spec, sets);
  if (remove !== undefined) out.push({ tool: "ipset", script: remove });
  // iptables has no ARP output hook: the probes live in nft's `arp` table with either front end.
  const arpWanted = (spec?.arpProbes ?? []).length > 0;
  if (arpWanted || observed.some((k) => k.startsWith(ARP_KEY_PREFIX)))
    out.push({ tool: "nft", script: renderNftArp(spec), frontEnd: "iptables" });
  return out;
}

/**
 * The payloads that run first: links added, sysctls, ip batches. They depend only on the changes
 * diffRouting gives (links added, sysctls, routes, rules), which keep their indices in the whole
 * list: the firewall's changes and link deletions come after them.
 */
export function renderRoutingPayloads(
  changes: readonly Change[],
  pinned: Readonly<Record<string, string>> = {},
): Pick<Payloads, "linkAdds" | "sysctls" | "ip"> {
  return {
    linkAdds: renderLinkBatch(changes, "add"),
    sysctls: orderSysctls(changes, pinned),
    ip: ([4, 6] as const).map((f) => renderIpBatch(changes, f)).filter((b) => b.lines.length > 0),
  };
}
