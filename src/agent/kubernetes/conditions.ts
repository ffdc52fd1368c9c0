// The standard `status.conditions` of a SymrouteNetwork, so that `kubectl wait
// --for=condition=Converged srn/NAME` works: a pure function of the per-node entries. Every agent
// that changes its own entry recomputes them from the whole map it read, under the object's
// resourceVersion (a conflict re-reads), so the last writer always had the latest view.

import { counted } from "../../model/plural.ts";
import type { NodeStatus } from "./resources.ts";

const CONVERGED = "Converged";

/** metav1.Condition, as the CRD declares it. */
export interface Condition {
  readonly type: string;
  readonly status: "True" | "False" | "Unknown";
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

interface NetworkSummary {
  readonly conditions: readonly Condition[];
  /** "converged/reporting", for the printer column. */
  readonly convergedNodes: string;
}

export function summarizeNodes(
  nodes: Readonly<Record<string, NodeStatus>>,
  generation: number | undefined,
  previous: readonly Condition[] | undefined,
  now: string,
): NetworkSummary {
  const names = Object.keys(nodes).sort();
  const failing = names.filter((n) => nodes[n]?.converged !== true);
  const ok = names.length - failing.length;
  let status: Condition["status"];
  let reason: string;
  let message: string;
  if (names.length === 0) {
    status = "Unknown";
    reason = "NoNodes";
    message = "no node has reported on this network yet";
  } else if (failing.length === 0) {
    status = "True";
    reason = "AllNodesConverged";
    message = `${ok} of ${counted(names.length, "node")} converged`;
  } else {
    const first = failing[0] as string;
    const entry = nodes[first] as NodeStatus;
    status = "False";
    reason = entry.reason;
    const more =
      failing.length > 1 ? ` (and ${failing.length - 1} more: ${failing.slice(1, 4).join(", ")})` : "";
    message = `${failing.length} of ${counted(names.length, "node")} not converged; ${first}: ${entry.reason}: ${entry.message}${more}`;
  }
  const before = previous?.find((c) => c.type === CONVERGED);
  const condition: Condition = {
    type: CONVERGED,
    status,
    reason,
    message,
    lastTransitionTime: before !== undefined && before.status === status ? before.lastTransitionTime : now,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  };
  // Conditions of other types (written by someone else) are kept as they are.
  const others = (previous ?? []).filter((c) => c.type !== CONVERGED);
  return { conditions: [condition, ...others], convergedNodes: `${ok}/${names.length}` };
}
