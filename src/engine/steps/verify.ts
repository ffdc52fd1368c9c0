// Step 6: verify. Read again what this apply wrote (links and sysctls, the families it sent ip
// batches for, the firewall front ends it ran a transaction for) and compare each part with the
// same desired state as soon as its read is in; what it did not write is as the plan read it.
// Each part's read starts when that part is written, while the other is still being written.

import type { Family } from "../../model/address.ts";
import { SymrouteError, isSymrouteError } from "../../model/errors.ts";
import type { FirewallBackend, NodeState, OwnedFirewall, RoutingState } from "../../model/state.ts";
import {
  diffFirewall,
  diffLinkDeletes,
  diffRouting,
  type DiffResult,
  type OwnershipMarks,
} from "../../plan/diff.ts";
import { SYSCTLS_TO_READ } from "../../plan/sysctls.ts";
import type { Change } from "../../model/change.ts";
import { describeChange } from "../describe.ts";
import { frontEndOf } from "../firewall/index.ts";
import type { Kernel } from "../ports.ts";
import type { Planned, RoutingPlan } from "../types.ts";
import { countOwned } from "./plan.ts";
import { counted } from "../../model/plural.ts";

interface RoutingCheck {
  readonly reread: RoutingState;
  readonly diff: DiffResult;
}

interface FirewallCheck {
  readonly reread: readonly OwnedFirewall[];
  readonly changes: Change[];
}

/** The re-reads of one apply, each started once, when its part is written. */
export class Verification {
  private routingCheck: Promise<RoutingCheck> | undefined;
  private firewallCheck: Promise<FirewallCheck> | undefined;
  /** The front ends the firewall payloads write (a switch of front end writes both). */
  private written: readonly FirewallBackend[] = [];

  constructor(
    private readonly kernel: Kernel,
    readonly rp: RoutingPlan,
    /** The firewall as the plan read it. */
    readonly observedFirewall: readonly OwnedFirewall[],
    /** Ownership as the state written after this apply describes it. */
    readonly own: OwnershipMarks,
    /** The families the apply sends ip batches for. */
    private readonly families: readonly Family[],
  ) {}

  /** Notes which front ends the whole plan's firewall payloads write; returns the plan. */
  expect(planned: Planned): Planned {
    this.written = [...new Set(planned.report.payloads.firewall.map((p) => frontEndOf(p).name))];
    return planned;
  }

  routing(): Promise<RoutingCheck> {
    const { rp, families } = this;
    const untouched = <T extends { readonly family: Family }>(objects: readonly T[]): T[] =>
      objects.filter((o) => !families.includes(o.family));
    this.routingCheck ??= this.kernel
      .readNode({ ...SYSCTLS_TO_READ, firewalls: [], families })
      .then(({ firewall: _none, ...routing }) => {
        const reread: RoutingState = {
          ...routing,
          addresses: routing.addresses.concat(untouched(rp.routing.addresses)),
          routes: routing.routes.concat(untouched(rp.routing.routes)),
          rules: routing.rules.concat(untouched(rp.routing.rules)),
        };
        return { reread, diff: diffRouting(rp.desired, reread, this.own) };
      });
    // Awaited by verify, unless the apply failed; until then a rejection must not count as unhandled.
    this.routingCheck.catch(() => undefined);
    return this.routingCheck;
  }

  firewall(): Promise<FirewallCheck> {
    this.firewallCheck ??= this.kernel.readFirewall(this.written).then((read) => {
      const rewritten = new Set(read.map((f) => f.backend));
      const reread = [...read, ...this.observedFirewall.filter((f) => !rewritten.has(f.backend))];
      return { reread, changes: diffFirewall(this.rp.desired, reread) };
    });
    this.firewallCheck.catch(() => undefined);
    return this.firewallCheck;
  }
}

/**
 * The plan again, made from the re-read node: `after.report.inSync` when the apply took. A change
 * still pending, or a read that failed (no `after` then), is a verification failure, returned (not
 * thrown) so that it is rolled back: without the read nothing says the node is as planned.
 */
export async function verify(
  check: Verification,
  planned: Planned,
  firewallTouched: boolean,
): Promise<{ readonly after?: Planned; readonly failure?: SymrouteError }> {
  const { rp, observedFirewall, own } = check;
  let routing: RoutingCheck;
  let firewall: FirewallCheck;
  try {
    [routing, firewall] = await Promise.all([
      check.routing(),
      firewallTouched
        ? check.firewall()
        : {
            reread: observedFirewall,
            changes: diffFirewall(rp.desired, observedFirewall, rp.saved?.firewallContents),
          },
    ]);
  } catch (error) {
    return { failure: readFailed(error) };
  }
  const reread: NodeState = { ...routing.reread, firewall: firewall.reread };
  const changes = [
    ...routing.diff.changes,
    ...firewall.changes,
    ...diffLinkDeletes(rp.desired, reread.links, own),
  ];
  const after: Planned = {
    ...planned,
    node: reread,
    report: {
      ...planned.report,
      changes,
      inSync: changes.length === 0,
      ownedObjects: countOwned(reread, own),
    },
  };
  if (after.report.inSync) return { after };
  return {
    after,
    failure: new SymrouteError(
      "verification",
      `${counted(changes.length, "change")} still pending after apply`,
      {
        details: changes.slice(0, 10).map(describeChange),
        hint: "something on the node changes these objects back (a network manager?); see `symroute doctor`",
      },
    ),
  };
}

/** A read after the apply failed: the apply cannot be verified. */
function readFailed(error: unknown): SymrouteError {
  const cause = isSymrouteError(error) ? error : undefined;
  return new SymrouteError(
    "verification",
    `could not read the node back to verify what this run wrote: ${error instanceof Error ? error.message : String(error)}`,
    {
      cause: error,
      details: cause?.details ?? [],
      hint: "the node is as it was before this run; find why the read failed (the tool's message above), then run the same command again",
      retriable: cause?.retriable ?? false,
    },
  );
}
