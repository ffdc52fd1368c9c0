// What planning produces: the desired objects, the reasons behind them, and the changes to get there.

import type { Family } from "../model/address.ts";
import type { Method } from "../config/schema.ts";
import type { FirewallSpec } from "../model/firewall.ts";
import type { Route, Rule } from "../model/state.ts";
import type { VlanSpec } from "../model/change.ts";

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
  /**
   * From 64 fwmark rules on (with room in the band): the fwmark rules in groups of 32 mark values,
   * at priorities `from`-`to` (group G at `from` + G), each behind one `fwmark GROUP/GROUPMASK goto`
   * at `dispatch`, and a `nop` at `nop` after the last group; undefined: one list at one priority.
   */
  readonly groups?: {
    readonly dispatch: number;
    readonly groups: number;
    readonly from: number;
    readonly to: number;
    readonly nop: number;
  };
  /** One line in plain words: why there is a skip rule or not (shown by `plan`). */
  readonly reason: string;
}

/**
 * What a warning is about, stable for scripts and alerts (the message's words may change):
 * a network's interface is down, or has IPv6 off while the network has IPv6 pools, or is a bridge's
 * (bond's) port; its gateway is an address of this node; it takes a mark another
 * network held; one family has a gateway and the other none; a pool is on another interface's
 * subnet; a foreign rule sits in symroute's band; the route protocol moves, or its new number is
 * already on other objects; a network's mark value moves; the state does not know the node from
 * before symroute, or a forced delete leaves parts of it as they are.
 */
export const WARNING_KINDS = [
  "interface-down",
  "ipv6-disabled",
  "interface-is-port",
  "gateway-is-node-address",
  "mark-reused",
  "half-gateway",
  "pool-on-other-interface",
  "foreign-rule-in-band",
  "route-protocol-move",
  "route-protocol-taken",
  "mark-move",
  "baseline-unknown",
  "baseline-not-restored",
] as const;
export type WarningKind = (typeof WARNING_KINDS)[number];

/**
 * One warning: the message `warnings[]` carries, with its kind and the networks it concerns (a
 * warning about one network may name another, which it does not concern). Empty networks: the node
 * as a whole.
 */
export interface PlanWarning {
  readonly kind: WarningKind;
  readonly message: string;
  readonly networks: readonly string[];
}

/** The warnings' messages, as `warnings[]` lists them. */
export const warningMessages = (warnings: readonly PlanWarning[]): string[] => warnings.map((w) => w.message);

/** A network's routing table and mark value (either absent when the network needs none). */
export interface Allocation {
  readonly table?: number;
  readonly mark?: number;
}

/** Allocations by network name. */
export type Allocations = Readonly<Record<string, Allocation>>;

export interface DesiredState {
  readonly decisions: readonly NetworkDecision[];
  readonly routes: readonly Route[];
  readonly rules: readonly Rule[];
  /** Target values (path-form names), including raises that keep other interfaces' rp_filter. */
  readonly sysctls: Readonly<Record<string, string>>;
  /** undefined: symroute needs no firewall objects. */
  readonly firewall: FirewallSpec | undefined;
  readonly vlans: readonly VlanSpec[];
  readonly allocations: Allocations;
  /**
   * Tables and marks a network held in the previous record (or one removed before, remembered) and
   * none holds now, by that network: connections of a removed network can still carry its mark, so
   * new networks take these last. Absent: none.
   */
  readonly freedAllocations?: Allocations;
  /** The messages of warningDetails, in its order. */
  readonly warnings: readonly string[];
  readonly warningDetails: readonly PlanWarning[];
  /**
   * Tables symroute chose itself (not a network's `table:`): a foreign route in one is a conflict.
   * In a table of the operator's choosing, their own routes are expected.
   */
  readonly allocatedTables?: readonly number[];
  /** One entry per family with fwmark rules: the skip rule over them, or why there is none. */
  readonly ruleSkips?: readonly RuleSkip[];
}

/** A foreign object in symroute's way: reported, never touched. */
export interface Conflict {
  readonly object: string;
  readonly reason: string;
  /** The networks whose objects it is in the way of; undefined: none in particular (the node's). */
  readonly networks?: readonly string[];
}
