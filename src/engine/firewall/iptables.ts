// The iptables front end: symroute's chains in the mangle table, one `iptables-restore --noflush`
// per family, the pools in ipsets (`ipset restore`), and nft's ARP table for the probes (iptables
// has no ARP output hook).

import { SymrouteError } from "../../model/errors.ts";
import type { Family } from "../../model/address.ts";
import { familiesOf, ipsetsOf } from "../../model/firewall.ts";
import type { OwnedFirewall } from "../../model/state.ts";
import { renderIptablesPayloads } from "../../render/payloads.ts";
import type { FirewallFrontEnd } from "./front-end.ts";

/** Whether symroute's iptables chains are in `family`'s mangle table (then that table is there). */
const chainsIn = (observed: readonly OwnedFirewall[], family: Family): boolean =>
  (observed.find((f) => f.backend === "iptables")?.ruleKeys ?? []).some((k) => k.startsWith(`${family}:`));

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
    // iptables-nft creates the mangle table on first use: noted, so that clean-up can drop it; only
    // once it is there (a restore the tool refused made none, and the record would name it).
    const absent =
      created !== undefined &&
      !created.has(payload.family) &&
      !(await kernel.iptablesMangleExists(payload.family));
    try {
      await kernel.runIptablesRestore(payload.family, payload.script);
    } finally {
      // Unknown (the read failed): noted as before, the drop removes only an empty table.
      const made = absent && (await kernel.iptablesMangleExists(payload.family).catch(() => true));
      if (made) created?.add(payload.family);
    }
  },
  async tablesToCreate(kernel, spec, observed, created) {
    if (spec?.backend !== "iptables") return [];
    // A family with symroute's chains has its table: no tool run to ask (the agent's usual edit).
    const families = familiesOf(spec).filter((f) => !created.has(f) && !chainsIn(observed, f));
    // A failed look reads as "there" (iptablesMangleExists): never claimed, never dropped.
    const there = await Promise.all(families.map((f) => kernel.iptablesMangleExists(f)));
    return families.filter((_, i) => there[i] === false);
  },
  tablesMade: (creating, observed) => creating.filter((f) => chainsIn(observed, f)),
  async cleanUp(kernel, created, inUse) {
    if (inUse) return;
    // The mangle table goes again when symroute created it and nothing else uses it.
    for (const family of created) await kernel.dropEmptyIptablesMangle(family);
    created.clear();
  },
};
