// What planning produces: the desired objects, the reasons behind them, and the changes to get there.

import type { Family } from "../model/address.ts";
import type { Method } from "../config/schema.ts";
import type { FirewallBackend, Route, Rule } from "../model/state.ts";

/** The article's four cases, named by what they need. */
export type CaseName = "nothing-to-do" | "route" | "source-routing" | "policy-routing";

export type ResolvedMethod = Exclude<Method, "auto">;

export interface NetworkDecision {
  readonly name: string;
  readonly family: Family;
  readonly pools: readonly string[];
  readonly interface: string;
  readonly gateway?: string;
  readonly case: CaseName;
  readonly method: ResolvedMethod;
  /** One line in plain words: why this method. */
  readonly reason: string;
  readonly table?: number;
  readonly mark?: number;
}

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

/**
 * How packets without symroute's mark get past its `fwmark` rules in one family (KERNEL-FACTS 12,
 * issue 15): every new flow through the node, most of which concern no pool, would otherwise try
 * each of them in turn. With `skip`, a rule `priority P fwmark 0x0/MASK goto G` sends them to a
 * `nop` rule at priority G, past the fwmark rules at P+1; the band's unmarked rules (method
 * `source`) come after the nop, so nothing they need is skipped.
 */
export interface RuleSkip {
  readonly family: Family;
  /** symroute's fwmark rules of this family. */
  readonly fwmarkRules: number;
  /** The skip rule's priority and its target's (the nop); undefined: no skip rule. */
  readonly skip?: { readonly priority: number; readonly goto: number };
  /** One line in plain words: why there is a skip rule or not (shown by `plan`). */
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

export interface VlanSpec {
  readonly ifname: string;
  readonly parent: string;
  readonly id: number;
}

export interface DesiredState {
  readonly decisions: readonly NetworkDecision[];
  readonly routes: readonly Route[];
  readonly rules: readonly Rule[];
  /** Target values (path-form names), including raises that keep other interfaces' rp_filter. */
  readonly sysctls: Readonly<Record<string, string>>;
  /** undefined: symroute needs no firewall objects. */
  readonly firewall: FirewallSpec | undefined;
  readonly vlans: readonly VlanSpec[];
  readonly allocations: Readonly<Record<string, { readonly table?: number; readonly mark?: number }>>;
  readonly warnings: readonly string[];
  /**
   * Tables symroute chose itself (not a network's `table:`): a foreign route in one is a conflict.
   * In a table of the operator's choosing, their own routes are expected.
   */
  readonly allocatedTables?: readonly number[];
  /** One entry per family with fwmark rules: the skip rule over them, or why there is none. */
  readonly ruleSkips?: readonly RuleSkip[];
}

export type Change =
  | { readonly kind: "link"; readonly action: "add" | "delete"; readonly vlan: VlanSpec }
  | { readonly kind: "route"; readonly action: "add" | "delete"; readonly route: Route }
  | { readonly kind: "route"; readonly action: "replace"; readonly route: Route; readonly previous: Route }
  | { readonly kind: "rule"; readonly action: "add" | "delete"; readonly rule: Rule }
  | {
      readonly kind: "sysctl";
      readonly action: "set";
      readonly name: string;
      readonly from: string | undefined;
      readonly to: string;
    }
  | {
      readonly kind: "firewall";
      readonly action: "replace" | "delete";
      readonly backend: FirewallBackend;
      readonly rules: number;
    };

/** A foreign object in symroute's way: reported, never touched. */
export interface Conflict {
  readonly object: string;
  readonly reason: string;
}
