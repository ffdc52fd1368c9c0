// apply and delete, step by step: lock -> observe -> plan -> record state -> apply -> verify ->
// commit, or roll back. Each step is a function in steps/; this file only says their order and
// what passes between them.

import type { Config } from "../config/schema.ts";
import { warningMessages } from "../plan/types.ts";
import { renderRoutingPayloads } from "../render/payloads.ts";
import { apply } from "./steps/apply.ts";
import { commit, commitInSync } from "./steps/commit.ts";
import { lock } from "./steps/lock.ts";
import { observe } from "./steps/observe.ts";
import { refuseMarkMoves } from "./steps/mark-moves.ts";
import { baselineWarning, unknownBaseline, unrestorable } from "./steps/baseline.ts";
import { finishPlan, ownership, planRouting, withObservedGuards } from "./steps/plan.ts";
import { recordState, StateRecord } from "./steps/record.ts";
import { rollBack } from "./steps/rollback.ts";
import { Verification, verify } from "./steps/verify.ts";
import type { ApplyOptions, ApplyReport, EngineDeps, Planned, PlanReport } from "./types.ts";

/** Brings the node to the config (apply) or removes everything symroute owns (`removing`: delete). */
export async function converge(
  { kernel, store }: EngineDeps,
  config: Config | undefined,
  options: ApplyOptions,
  removing: boolean,
): Promise<ApplyReport> {
  const release = await lock(store, options);
  try {
    const saved = await store.read();
    const observed = await observe(kernel, config, saved, removing);
    const routingPlan = planRouting(observed, config, saved, removing, store.location);
    // Every read is in before anything is written: a failed read changes nothing.
    const observedFirewall = await routingPlan.firewallRead;
    const rp = withObservedGuards(routingPlan, observedFirewall);
    const baselineUnknown = unknownBaseline(rp, observedFirewall);
    const warning = removing ? undefined : baselineWarning(rp, baselineUnknown);
    const baselineNotes = removing
      ? unrestorable(rp, observedFirewall, options)
      : warning === undefined
        ? []
        : [warning];
    // An apply's report names the record it wrote: a first record on a node symroute had already
    // changed does not know the baseline either (the agent's symroute_state_baseline_unknown).
    const recorded = <T extends PlanReport>(report: T): T =>
      removing || options.dryRun === true || baselineUnknown.length === 0 || report.state === undefined
        ? report
        : { ...report, state: { ...report.state, baselineUnknown } };
    const withWarnings = <T extends PlanReport>(report: T): T =>
      recorded(
        baselineNotes.length === 0
          ? report
          : {
              ...report,
              warnings: [...report.warnings, ...warningMessages(baselineNotes)],
              warningDetails: [...report.warningDetails, ...baselineNotes],
            },
      );
    // Before the dry run's return: a dry run answers as the apply would, a refusal included.
    refuseMarkMoves(rp, options);
    if (options.dryRun === true)
      return withWarnings({ ...finishPlan(rp, observedFirewall).report, applied: false });
    const routingPayloads = renderRoutingPayloads(rp.diff.changes, rp.desired.sysctls);
    // Routing changes pending: the node is not in sync, whatever the firewall's comparison says,
    // and the ip batches can start before it is made.
    const early = rp.diff.changes.length > 0 ? undefined : finishPlan(rp, observedFirewall, routingPayloads);

    const record = new StateRecord(rp, baselineUnknown, observedFirewall);
    if (early?.report.inSync === true) {
      await commitInSync(kernel, store, record, rp, observedFirewall, removing);
      return withWarnings({ ...early.report, applied: false });
    }
    await recordState(kernel, store, record, saved, removing, observedFirewall);

    const check = new Verification(kernel, rp, observedFirewall, ownership(config, record.state(false)), [
      ...new Set(routingPayloads.ip.map((b) => b.family)),
    ]);
    const outcome = await apply(
      kernel,
      routingPayloads,
      rp.diff.changes,
      (): Planned => check.expect(early ?? finishPlan(rp, observedFirewall, routingPayloads)),
      record.created,
      { routingDone: () => void check.routing(), firewallDone: () => void check.firewall() },
    );
    const { planned } = outcome;
    let failure = outcome.error;
    let after: Planned | undefined;
    if (failure === undefined && planned !== undefined) {
      const verified = await verify(check, planned, outcome.firewallTouched);
      after = verified.after;
      failure = verified.failure;
    }
    if (failure === undefined && after !== undefined) {
      try {
        await commit(kernel, store, record, after, removing);
      } catch (error) {
        failure = error;
      }
    }
    if (failure !== undefined || planned === undefined || after === undefined) {
      return await rollBack(
        kernel,
        store,
        record,
        saved,
        rp.routing,
        {
          changes: planned?.report.changes ?? rp.diff.changes,
          executed: outcome.executed(),
          firewallTouched: outcome.firewallTouched,
        },
        failure,
        removing ? "delete" : "apply",
      );
    }
    return withWarnings({
      ...planned.report,
      // The changes listed are those applied; after them the node is in sync (verified above).
      inSync: after.report.inSync,
      ownedObjects: after.report.ownedObjects,
      applied: true,
    });
  } finally {
    await release();
  }
}
