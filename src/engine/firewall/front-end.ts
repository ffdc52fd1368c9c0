// A firewall front end: how symroute's firewall objects are rendered, written and cleaned up with
// one set of tools. The engine holds no branch on the front end; it asks the implementation
// (nftables.ts, iptables.ts) through this interface.

import type { Family } from "../../model/address.ts";
import type { FirewallSpec } from "../../model/firewall.ts";
import type { FirewallBackend, NodeState, OwnedFirewall } from "../../model/state.ts";
import type { FirewallPayload } from "../../render/payloads.ts";
import type { SymrouteError } from "../../model/errors.ts";
import type { Kernel } from "../ports.ts";
import type { Observation } from "../types.ts";

/**
 * What a front end's tools created on the node for symroute: the iptables mangle tables by family,
 * and the built-in chains in them (`4:PREROUTING`; iptables-nft makes each on first use, also in a
 * table that was there). Clean-up removes them again once symroute no longer uses them.
 */
export interface CreatedObjects {
  readonly tables: Set<Family>;
  readonly chains: Set<string>;
}

/** What a run may create (CreatedObjects, as lists): named by the record written before it. */
export interface CreatingObjects {
  readonly tables: readonly Family[];
  readonly chains: readonly string[];
}

export interface FirewallFrontEnd {
  /** Its name in the config, the plan and the state file. */
  readonly name: FirewallBackend;
  /**
   * The payloads that bring its objects on the node to `spec` (undefined: none of them left),
   * in the order they run. Pure.
   */
  render(spec: FirewallSpec | undefined, node: NodeState): FirewallPayload[];
  /**
   * Whether `render` depends on this front end's objects in `node.firewall` (a roll back reads
   * them again only then, so that a read tool that fails does not stop the others' roll back).
   */
  readonly rendersFromNode: boolean;
  /** What `spec` needs on the node that observe found missing (a dependency error); undefined: none. */
  missing(spec: FirewallSpec, observed: Observation): SymrouteError | undefined;
  /** Whether a payload of a plan is one of this front end's. */
  owns(payload: FirewallPayload): boolean;
  /**
   * Runs one of its payloads. `created`, when given (an apply), gains the tables and built-in
   * chains the tool creates on this run for symroute (so that clean-up can remove them).
   */
  run(kernel: Kernel, payload: FirewallPayload, created?: CreatedObjects): Promise<void>;
  /**
   * The tables and built-in chains running `spec`'s payloads would create: absent now and not
   * already in `created` (`observed`: the front ends' objects as read). The record written before
   * an apply names them, so that the run after a crash can tell what this one made from what was there.
   */
  toCreate(
    kernel: Kernel,
    spec: FirewallSpec | undefined,
    observed: readonly OwnedFirewall[],
    created: CreatedObjects,
  ): Promise<CreatingObjects>;
  /**
   * Of what a run that crashed may have created (`creating`, from its record), what it did make:
   * the front end's objects are in it (`observed`, read after the crash), since one restore makes
   * the table or chain and symroute's rules in it together.
   */
  made(creating: CreatingObjects, observed: readonly OwnedFirewall[]): CreatingObjects;
  /**
   * After a committed run: removes what symroute created for this front end (`created`) and no
   * longer needs; `inUse` when it is the front end the config wants.
   */
  cleanUp(kernel: Kernel, created: CreatedObjects, inUse: boolean): Promise<void>;
}
