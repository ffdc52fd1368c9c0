// What the engine is given, what it returns, and the plan that passes from step to step.

import type { Config } from "../config/schema.ts";
import type { FirewallBackend, NodeState, OwnedFirewall, RoutingState } from "../model/state.ts";
import type { DiffResult, OwnershipMarks } from "../plan/diff.ts";
import type { Change } from "../model/change.ts";
import type { FirewallSpec } from "../model/firewall.ts";
import type { Conflict, DesiredState, NetworkDecision, PlanWarning, RuleSkip } from "../plan/types.ts";
import type { MarkMove } from "../plan/mark-moves.ts";
import type { KubeProxyModeSource } from "../plan/desired.ts";
import type { Payloads } from "../render/payloads.ts";
import type { BaselinePart, Kernel, SavedState, StateStore } from "./ports.ts";

export interface EngineDeps {
  readonly kernel: Kernel;
  readonly store: StateStore;
}

export interface PlanReport {
  readonly networks: readonly NetworkDecision[];
  readonly changes: readonly Change[];
  readonly conflicts: readonly Conflict[];
  /** The messages of warningDetails, in its order. */
  readonly warnings: readonly string[];
  /** Each warning with its kind and the networks it concerns. */
  readonly warningDetails: readonly PlanWarning[];
  readonly inSync: boolean;
  readonly firewall: FirewallBackend | undefined;
  readonly kubeProxyMode: string | undefined;
  /** Where kubeProxyMode came from: the config, kube-proxy's traces, or assumed (auto, none found). */
  readonly kubeProxyModeSource: KubeProxyModeSource | undefined;
  /** Routes, rules and firewall rules symroute owns on the node (after the apply, for apply). */
  readonly ownedObjects: number;
  readonly payloads: Payloads;
  /** The firewall symroute wants on the node (undefined: none). */
  readonly firewallSpec: FirewallSpec | undefined;
  /** Per family with fwmark rules: the rule that lets unmarked packets skip them, or why none. */
  readonly ruleSkips?: readonly RuleSkip[];
  /** The state file this run used, and whether it held a record (set by the engine). */
  readonly state?: StateInfo;
  /** Networks whose mark value this plan moves (plan's warning; apply refuses without moveMarks). */
  readonly markMoves?: readonly MarkMove[];
}

export interface StateInfo {
  /** The state file (its directory is the state directory plus the network namespace's id). */
  readonly file: string;
  /** Whether the file held a record of an earlier apply. */
  readonly found: boolean;
  /** The parts of the node before symroute that the record does not know (SavedState's field). */
  readonly baselineUnknown?: readonly BaselinePart[];
}

export interface ApplyReport extends PlanReport {
  readonly applied: boolean;
}

export interface ApplyOptions {
  readonly dryRun?: boolean;
  /**
   * delete only: remove what symroute owns even without a state file, leaving the sysctls it may
   * have changed as they are (their earlier values are known only from the state).
   */
  readonly force?: boolean;
  /**
   * apply only: move a network's mark value (a changed marks.mask) although connections open at
   * that moment keep the old value and lose their replies' route (plan's warning, MarkMove);
   * without it such an apply is refused and changes nothing.
   */
  readonly moveMarks?: boolean;
  /** How long to wait for another run in this namespace to finish. */
  readonly lockWaitMs?: number;
}

export interface Engine {
  plan(config: Config): Promise<PlanReport>;
  apply(config: Config, options?: ApplyOptions): Promise<ApplyReport>;
  remove(config?: Config, options?: ApplyOptions): Promise<ApplyReport>;
}

/** What the observe step read: routing in full, the firewall still being read. */
export interface Observation {
  readonly routing: NodeState;
  /** The firewall front ends that work on this node. */
  readonly available: readonly FirewallBackend[];
  /** Whether ipset is installed (the iptables front end keeps its pools in sets). */
  readonly ipsetAvailable: boolean;
  /** The front end wanted (undefined: removing, or no config). */
  readonly firewall: FirewallBackend | undefined;
  /** The front ends that may hold symroute's objects, still being read. */
  readonly firewallRead: Promise<readonly OwnedFirewall[]>;
}

/** The first half of a plan (planRouting); finishPlan completes it once the firewall is read. */
export interface RoutingPlan {
  readonly routing: RoutingState;
  readonly desired: DesiredState;
  readonly saved: SavedState | undefined;
  readonly own: OwnershipMarks;
  readonly firewall: FirewallBackend | undefined;
  readonly kubeProxyMode: string | undefined;
  /** Where kubeProxyMode came from: the config, kube-proxy's traces, or assumed (auto, none found). */
  readonly kubeProxyModeSource: KubeProxyModeSource | undefined;
  /** Links added, sysctls, routes and rules (diffRouting). */
  readonly diff: DiffResult;
  /**
   * Networks whose mark value this plan changes (undefined when none, as when removing), with the
   * configuration's marks.mask and the mask the old values were written under (the state's
   * firewall), for the messages.
   */
  readonly markMoves?: {
    readonly moves: readonly MarkMove[];
    readonly mask: number;
    readonly oldMask: number;
  };
  readonly firewallRead: Promise<readonly OwnedFirewall[]>;
  /** The state file, for the report. */
  readonly stateFile: string;
}

/** A whole plan: the report with every payload, and what it was made from. */
export interface Planned {
  readonly report: PlanReport;
  readonly desired: DesiredState;
  readonly node: NodeState;
}
