// Step 7: commit. The apply took (or nothing needed changing): the state file records the node as
// it now is. Recording is part of the apply: if it fails (a full disk), the apply is rolled back.

import type { OwnedFirewall } from "../../model/state.ts";
import { FRONT_ENDS } from "../firewall/index.ts";
import type { Kernel, SavedState, StateStore } from "../ports.ts";
import type { Planned, RoutingPlan } from "../types.ts";
import { ownershipMarksMoved, recordContents, type StateRecord } from "./record.ts";

/**
 * After a verified apply: sysctls no longer managed have their original value again, links deleted
 * are gone, each firewall front end cleans up what symroute created for it and no longer uses. A
 * delete removes the state file.
 */
export async function commit(
  kernel: Kernel,
  store: StateStore,
  record: StateRecord,
  after: Planned,
  removing: boolean,
): Promise<void> {
  const keptPrevious = stillManaged(record, after.desired.sysctls);
  const keptLinks = record.createdLinks.filter((l) => after.node.links.some((x) => x.ifname === l));
  for (const frontEnd of Object.values(FRONT_ENDS))
    await frontEnd.cleanUp(
      kernel,
      record.created,
      !removing && after.desired.firewall?.backend === frontEnd.name,
    );
  record.contents = recordContents(after.desired, after.node.firewall) ?? record.contents;
  // Verified: whatever carried a former route protocol was deleted or re-made under the new one.
  record.noFormerProtocols();
  if (removing) await store.remove();
  else await store.write(record.state(false, keptPrevious, keptLinks));
}

/**
 * The values from before symroute of the sysctls it still manages: one it no longer does is back to
 * that value (the diff wrote it back, or a crash left it unwritten), and recorded, a value set later
 * by someone else would be symroute's to overwrite (a later delete).
 */
function stillManaged(
  record: StateRecord,
  desired: Readonly<Record<string, string>>,
): Record<string, string> {
  return Object.fromEntries(Object.entries(record.previousSysctls).filter(([name]) => name in desired));
}

/**
 * A run that found the node in sync changes nothing on it but what a crashed run's commit had yet
 * to clean up: each front end drops the tables and built-in chains symroute made and no longer
 * uses (a delete killed after its payloads left them, named in its record). The state file is
 * renewed only when that clean-up changed the record, when its record of the firewall's content is
 * missing, it is still in progress (a crash before the commit's record), the allocations moved or
 * the ownership marks did (a routeProtocol or rule band changed while symroute had nothing on the
 * node that carries it, or a move whose objects are all under the new number already), and a
 * delete removes it.
 */
export async function commitInSync(
  kernel: Kernel,
  store: StateStore,
  record: StateRecord,
  rp: RoutingPlan,
  observedFirewall: readonly OwnedFirewall[],
  removing: boolean,
): Promise<void> {
  const { saved, desired } = rp;
  const contents = recordContents(desired, observedFirewall);
  const backend = desired.firewall?.backend;
  const recordMissing =
    contents !== undefined && backend !== undefined && saved?.firewallContents?.[backend] === undefined;
  // A record still in progress (a crash after the node was written, before the commit's record):
  // the node is in sync with every front end, all read (observe), so the record is settled;
  // left in progress, every later run would read every front end again.
  const settling = saved?.inProgress === true;
  const createdCount = (): number => record.created.tables.size + record.created.chains.size;
  const createdBefore = createdCount();
  for (const frontEnd of Object.values(FRONT_ENDS))
    await frontEnd.cleanUp(kernel, record.created, !removing && desired.firewall?.backend === frontEnd.name);
  const cleanedUp = createdCount() !== createdBefore;
  if (recordMissing || settling) record.contents = contents ?? record.contents;
  // In sync: nothing of symroute's carries a former protocol (the diff would delete or re-make it).
  record.noFormerProtocols();
  if (
    !removing &&
    (recordMissing ||
      settling ||
      cleanedUp ||
      JSON.stringify(saved?.allocations ?? {}) !== JSON.stringify(desired.allocations) ||
      JSON.stringify(saved?.freedAllocations ?? {}) !== JSON.stringify(desired.freedAllocations ?? {}) ||
      marksMoved(rp, saved))
  ) {
    // Of a record a crash left, the sysctls it had yet to write and no longer wants go (as a
    // commit's): a VLAN never made, a network dropped from the config.
    await store.write(record.state(false, stillManaged(record, desired.sysctls)));
  }
  if (removing && saved !== undefined) await store.remove();
}

/** Whether the record's ownership marks differ from the saved ones (or former protocols remain). */
function marksMoved(rp: RoutingPlan, saved: SavedState | undefined): boolean {
  return (
    saved !== undefined &&
    ((saved.formerRouteProtocols ?? []).length > 0 || ownershipMarksMoved(rp.own, saved))
  );
}
