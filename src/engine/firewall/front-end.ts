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
   * Runs one of its payloads. `created`, when given (an apply), gains the families whose tables
   * the tool creates on this run and symroute alone will use (so that clean-up can remove them).
   */
  run(kernel: Kernel, payload: FirewallPayload, created?: Set<Family>): Promise<void>;
  /**
   * The families whose tables running `spec`'s payloads would create: absent now and not already
   * in `created` (`observed`: the front ends' objects as read). The record written before an apply
   * names them, so that the run after a crash can tell a table this one made from one that was there.
   */
  tablesToCreate(
    kernel: Kernel,
    spec: FirewallSpec | undefined,
    observed: readonly OwnedFirewall[],
    created: ReadonlySet<Family>,
  ): Promise<Family[]>;
  /**
   * Of the families a run that crashed may have created tables for (`creating`, from its record),
   * those whose table it did make: the front end's objects are in it (`observed`, read after the
   * crash), since one restore makes the table and its objects together.
   */
  tablesMade(creating: readonly Family[], observed: readonly OwnedFirewall[]): Family[];
  /**
   * After a committed run: removes what symroute created for this front end (`created`) and no
   * longer needs; `inUse` when it is the front end the config wants.
   */
  cleanUp(kernel: Kernel, created: Set<Family>, inUse: boolean): Promise<void>;
}
