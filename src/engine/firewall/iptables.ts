// The iptables front end: symroute's chains in the mangle table, one `iptables-restore --noflush`
// per family, the pools in ipsets (`ipset restore`), and nft's ARP table for the probes (iptables
// has no ARP output hook).

import { SymrouteError } from "../../model/errors.ts";
import type { Family } from "../../model/address.ts";
import { BUILTIN, familiesOf, iptablesRules, ipsetsOf, type FirewallSpec } from "../../model/firewall.ts";
import type { OwnedFirewall } from "../../model/state.ts";
import { builtinChainsInserted } from "../../render/firewall-scripts.ts";
import { renderIptablesPayloads } from "../../render/payloads.ts";
import type { FirewallFrontEnd } from "./front-end.ts";

/** Whether symroute's iptables chains are in `family`'s mangle table (then that table is there). */
const chainsIn = (observed: readonly OwnedFirewall[], family: Family): boolean =>
  (observed.find((f) => f.backend === "iptables")?.ruleKeys ?? []).some((k) => k.startsWith(`${family}:`));

/** A built-in chain of a family's mangle table, as the state file names it. */
const chainKey = (family: Family, chain: string): string => `${family}:${chain}`;

/** The family and chain a `chainKey` names. */
const parseChainKey = (key: string): { family: Family; chain: string } => {
  const [family, chain] = key.split(":");
  return { family: Number(family) as Family, chain: chain ?? "" };
};

/** Whether a rule of symroute's is in built-in `chain` of `family` as read (then the chain is there). */
const ruleIn = (observed: readonly OwnedFirewall[], family: Family, chain: string): boolean =>
  (observed.find((f) => f.backend === "iptables")?.contents ?? []).some((c) =>
    c.startsWith(`${family}:-A ${chain} `),
  );

/** The built-in chains `spec`'s rules of `family` are in (each jump to symroute's chains). */
const builtinChainsOf = (spec: FirewallSpec, family: Family): string[] => [
  ...new Set(
    iptablesRules(spec, family)
      .filter((r) => BUILTIN.has(r.chain))
      .map((r) => r.chain),
  ),
];

export const iptablesFrontEnd: FirewallFrontEnd = {
  name: "iptables",
  render: (spec, node) => renderIptablesPayloads(spec, node),
  // The jumps from the built-in chains are inserted only where missing; stale sets are destroyed.
  rendersFromNode: true,
  missing(spec, observed) {
    if (ipsetsOf(spec).length === 0 || observed.ipsetAvailable) return undefined;
    return new SymrouteError(
      "dependency",
      "the iptables front end keeps the pools in ipsets (one lookup per packet), and ipset is not installed on this node",
      { hint: "install the Debian package ipset, or use firewall: nftables" },
    );
  },
  owns: (payload) => payload.tool !== "nft" || payload.frontEnd === "iptables",
  async run(kernel, payload, created) {
    if (payload.tool === "nft") return kernel.runNft(payload.script);
    if (payload.tool === "ipset") return kernel.runIpsetRestore(payload.script);
    const { family } = payload;
    // iptables-nft creates the mangle table, and each built-in chain a jump goes into, on first
    // use: noted, so that clean-up can drop them; only once they are there (a restore the tool
    // refused made none, and the record would name them).
    const absent =
      created !== undefined && !created.tables.has(family) && !(await kernel.iptablesMangleExists(family));
    const inserted =
      created === undefined
        ? []
        : builtinChainsInserted(payload.script).filter((c) => !created.chains.has(chainKey(family, c)));
    // In an absent table every chain is absent; in one that is there, nft says which.
    const chainsAbsent =
      absent || inserted.length === 0 ? inserted : await kernel.iptablesBaseChainsAbsent(family, inserted);
    try {
      await kernel.runIptablesRestore(family, payload.script);
    } finally {
      // Unknown (the read failed): noted as before, the drop removes only an empty table.
      const made = absent && (await kernel.iptablesMangleExists(family).catch(() => true));
      if (made) created?.tables.add(family);
      // A made table's chains came with it; else those nft shows now (a failed read: none made).
      const stillAbsent =
        absent || chainsAbsent.length === 0
          ? []
          : await kernel.iptablesBaseChainsAbsent(family, chainsAbsent).catch(() => chainsAbsent);
      const chainsMade = absent ? (made ? chainsAbsent : []) : chainsAbsent;
      for (const c of chainsMade) if (!stillAbsent.includes(c)) created?.chains.add(chainKey(family, c));
    }
  },
  async toCreate(kernel, spec, observed, created) {
    if (spec?.backend !== "iptables") return { tables: [], chains: [] };
    // A family with symroute's chains has its table: no tool run to ask (the agent's usual edit).
    const families = familiesOf(spec).filter((f) => !created.tables.has(f) && !chainsIn(observed, f));
    // A failed look reads as "there" (iptablesMangleExists): never claimed, never dropped.
    const there = await Promise.all(families.map((f) => kernel.iptablesMangleExists(f)));
    const tables = families.filter((_, i) => there[i] === false);
    // A built-in chain with symroute's jump in it is there: no tool run to ask either.
    const chains = await Promise.all(
      familiesOf(spec).map(async (f) => {
        const wanted = builtinChainsOf(spec, f).filter(
          (c) => !created.chains.has(chainKey(f, c)) && !ruleIn(observed, f, c),
        );
        if (wanted.length === 0) return [];
        const absent = tables.includes(f) ? wanted : await kernel.iptablesBaseChainsAbsent(f, wanted);
        return absent.map((c) => chainKey(f, c));
      }),
    );
    return { tables, chains: chains.flat() };
  },
  made: (creating, observed) => ({
    tables: creating.tables.filter((f) => chainsIn(observed, f)),
    // One restore made the chain and put symroute's jump in it.
    chains: creating.chains.filter((key) => {
      const { family, chain } = parseChainKey(key);
      return ruleIn(observed, family, chain);
    }),
  }),
  async cleanUp(kernel, created, inUse) {
    if (inUse) return;
    // A built-in chain goes again when symroute created it and it is empty; then the mangle table
    // when symroute created it and nothing else uses it.
    for (const key of created.chains) {
      const { family, chain } = parseChainKey(key);
      await kernel.dropEmptyIptablesChain(family, chain);
    }
    created.chains.clear();
    for (const family of created.tables) await kernel.dropEmptyIptablesMangle(family);
    created.tables.clear();
  },
};
