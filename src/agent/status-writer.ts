// Per-network status for this node on the SymrouteNetwork objects (with --kubernetes): converged or
// why not. Written only when it differs from what the object already shows, so a quiet node does not
// write to the API server on every resync.

import type { ApplyReport } from "../engine/engine.ts";
import type { NetworkVerdict } from "./kubernetes/cluster.ts";
import type { NodeStatus } from "./kubernetes/resources.ts";
import type { ClusterSnapshot, KubernetesSource } from "./kubernetes/source.ts";
import type { Logger } from "./logger.ts";
import type { AgentMetrics } from "./metrics.ts";
import { counted } from "../model/plural.ts";

interface StatusInput {
  readonly cluster:
    | { readonly source: KubernetesSource; readonly snapshot: ClusterSnapshot; readonly nodeName: string }
    | undefined;
  readonly verdicts: readonly NetworkVerdict[];
  readonly refused: ReadonlyMap<string, string>;
  readonly report: ApplyReport | undefined;
  /** The reconcile's error message, when it failed. */
  readonly failure: string | undefined;
}

export async function writeNodeStatuses(
  input: StatusInput,
  metrics: AgentMetrics,
  logger: Logger,
): Promise<void> {
  const { cluster, verdicts, refused, report, failure } = input;
  if (cluster === undefined) return;
  const { source, snapshot, nodeName } = cluster;
  for (const verdict of verdicts) {
    const object = snapshot.networks.find((n) => n.metadata.name === verdict.network);
    const previous = object?.status?.nodes?.[nodeName];
    const next = nodeStatusFor(verdict, refused.get(verdict.network), report, failure);
    const generation = object?.metadata.generation;
    if (next === undefined) {
      if (previous === undefined) continue;
    } else if (
      previous !== undefined &&
      previous.converged === next.converged &&
      previous.reason === next.reason &&
      previous.message === next.message &&
      previous.observedGeneration === generation
    ) {
      continue;
    }
    const status: NodeStatus | undefined =
      next === undefined
        ? undefined
        : {
            ...next,
            lastTransitionTime:
              previous !== undefined && previous.converged === next.converged
                ? previous.lastTransitionTime
                : new Date().toISOString(),
            ...(generation === undefined ? {} : { observedGeneration: generation }),
          };
    try {
      await source.writeStatus(verdict.network, status);
    } catch (error) {
      metrics.sourceErrors.inc({ source: "kubernetes-status" });
      logger.warn(
        { network: verdict.network, err: String(error) },
        "cannot write status; retried on the next reconcile",
      );
    }
  }
}

/** How many of a network's conflicts, and of the plan's warnings, its status names. */
const SHOWN = 3;

/** The first SHOWN of `lines`, then how many more (`noun`, counted): an entry's message stays short. */
function firstAndCount(lines: readonly string[], noun: string): string[] {
  const more = lines.length - SHOWN;
  return [...lines.slice(0, SHOWN), ...(more > 0 ? [`and ${counted(more, noun)}`] : [])];
}

/** What this node says about one network; undefined: nothing (the network does not select it). */
function nodeStatusFor(
  verdict: NetworkVerdict,
  refusal: string | undefined,
  report: ApplyReport | undefined,
  failure: string | undefined,
): Omit<NodeStatus, "lastTransitionTime"> | undefined {
  if (verdict.state === "not-selected") return undefined;
  if (verdict.state === "invalid")
    return { converged: false, reason: verdict.reason, message: verdict.message };
  if (verdict.state === "not-announced")
    return { converged: true, reason: "NotAnnounced", message: verdict.message };
  if (refusal !== undefined) return { converged: false, reason: "InvalidSpec", message: refusal };
  if (failure !== undefined) return { converged: false, reason: "ApplyFailed", message: failure };
  // This network's conflicts only; one that names no network is the whole node's, so every
  // network's.
  const conflicts = (report?.conflicts ?? []).filter(
    (c) => c.networks === undefined || c.networks.includes(verdict.network),
  );
  if (conflicts.length > 0) {
    return {
      converged: false,
      reason: "Conflict",
      message: firstAndCount(
        conflicts.map((c) => `${c.object}: ${c.reason}`),
        "more conflict",
      ).join("; "),
    };
  }
  const decisions = (report?.networks ?? []).filter((d) => d.name === verdict.network);
  const how = decisions.map((d) => `IPv${d.family} ${d.method}: ${d.reason}`).join("; ");
  // Plan's warnings about this network come first: converged, but something the operator should see.
  // By the networks each concerns: its message may name other networks too. One that concerns no
  // network is the whole node's (a state file without the node from before symroute, a foreign rule
  // in the band), so every network's, as for conflicts: else no status would show it.
  // The first few and how many more, as for conflicts: the whole node's (one per foreign rule in
  // the band) are on every network's entry, and each entry is one node's of many on the object.
  const warnings = (report?.warningDetails ?? []).filter(
    (w) => w.networks.length === 0 || w.networks.includes(verdict.network),
  );
  const lines = warnings.map((w) => `warning: ${w.message}`);
  // The plan warns of a state file without the node from before symroute only in the apply that
  // writes it; the condition (delete refuses without --force) lasts, so the status says it while
  // the record says so.
  const unknown = report?.state?.baselineUnknown ?? [];
  if (unknown.length > 0 && !warnings.some((w) => w.kind === "baseline-unknown"))
    lines.unshift(
      `warning: the state file does not know the node from before symroute (${unknown.join(", ")}): ` +
        "delete refuses unless --force, which leaves those as they are; put the lost state file back if you have it",
    );
  return {
    converged: true,
    reason: "Converged",
    message: [...firstAndCount(lines, "more warning"), how === "" ? "in sync" : how].join("; "),
  };
}
