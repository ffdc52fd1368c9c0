// One reconcile: take the desired configuration from the config source, have the engine converge the
// node to it, and report the outcome (metrics, logs, readiness, node statuses). When to run one is
// the reconcile loop's business (reconcile-loop.ts).

import { describeChanges, type Engine, type ApplyReport } from "../engine/engine.ts";
import type { Config } from "../config/schema.ts";
import { isSymrouteError } from "../model/errors.ts";
import { counted } from "../model/plural.ts";
import { WARNING_KINDS } from "../plan/types.ts";
import type { Clock } from "./clock.ts";
import type { ConfigSource } from "./config-source.ts";
import type { Readiness } from "./http.ts";
import type { NetworkVerdict } from "./kubernetes/cluster.ts";
import type { Logger } from "./logger.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { LoopOutcome } from "./reconcile-loop.ts";
import { writeNodeStatuses } from "./status-writer.ts";

/** Failures that retrying cannot fix: wait for the next trigger or resync instead of backing off. */
const PERMANENT_KINDS = new Set(["invalid-argument", "conflict", "not-supported", "permission"]);

export interface ReconcilerOptions {
  readonly engine: Engine;
  readonly source: ConfigSource;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  /** How long an apply waits for a `symroute apply` run in the same namespace. */
  readonly lockWaitMs: number;
  /**
   * What the agent last read of the node (read-cache.ts): forgotten where a full read is due, told
   * when a reconcile verified the node (its next nft transaction may then be partial), and asked how
   * the reconcile's nft transaction ran (the `applied` line's `nftTransaction`).
   */
  readonly readCache?: {
    forget(): void;
    verified?(): void;
    takeNftTransaction?(): "partial" | "full" | "partial-refused" | undefined;
    /** Whether nothing the last verified reconcile read can have changed since (read-cache.ts). */
    unchanged?(): boolean;
  };
  /**
   * The state file, read once more after each reconcile (off its path, errors ignored): with its
   * reads kept while the file is unchanged (state-file.ts keepReads), the next reconcile, often the
   * one the apply's own kernel events trigger, finds the state the last commit wrote parsed.
   */
  readonly stateFile?: { read(): Promise<unknown> };
}

/** Reconciles that read the whole node whatever was kept: the first one and the periodic resync. */
const FULL_READ_REASONS = ["start", "resync"];

/** The loop's reason for a kernel monitor's line (agent.ts). */
const KERNEL_REASON = "kernel";

export class Reconciler {
  readonly #options: ReconcilerOptions;
  #inForce:
    | { readonly config: Config; readonly fingerprint: string; readonly interfaces: ReadonlySet<string> }
    | undefined;
  #lastOutcome: { readonly ok: boolean; readonly reason: string } = { ok: false, reason: "starting" };
  /** The last reconcile failed on something missing from the node (an interface): nothing was written. */
  #waitingForNode = false;
  #lastConflicts = "";
  /** The last successful reconcile's plan warnings: each new one is logged once, at warn. */
  #lastWarnings: ReadonlySet<string> = new Set();

  constructor(options: ReconcilerOptions) {
    this.#options = options;
  }

  /** The configuration the node was last converged to (what --cleanup-on-exit removes). */
  get configInForce(): Config | undefined {
    return this.#inForce?.config;
  }

  /** The interfaces the configuration in force names (networks' interfaces and VLAN parents). */
  get interfacesInForce(): ReadonlySet<string> | undefined {
    return this.#inForce?.interfaces;
  }

  /**
   * Whether the last reconcile failed on a dependency of the node (a network's interface missing),
   * before anything was written: an event that such an interface came back is worth a prompt retry.
   */
  get waitingForNode(): boolean {
    return this.#waitingForNode;
  }

  readiness(): Readiness {
    if (this.#inForce === undefined)
      return { ready: false, reason: `no configuration in force: ${this.#lastOutcome.reason}` };
    // Still ready with a stale configuration (the node keeps the last good one), but it says so.
    const staleNote = this.#options.source.staleNote();
    return this.#lastOutcome.ok
      ? { ready: true, reason: `converged${staleNote}` }
      : { ready: false, reason: this.#lastOutcome.reason + staleNote };
  }

  readonly reconcile = async (reasons: ReadonlySet<string>): Promise<LoopOutcome> => {
    const { engine, source, clock, logger, metrics } = this.#options;
    const started = clock.now();
    const end = metrics.reconcileDuration.startTimer();
    let verdicts: readonly NetworkVerdict[] = [];
    let refused: ReadonlyMap<string, string> = new Map();
    let report: ApplyReport | undefined;
    if (FULL_READ_REASONS.some((r) => reasons.has(r))) this.#options.readCache?.forget();
    this.#options.readCache?.takeNftTransaction?.();
    try {
      const desired = await source.desired();
      if (!desired.ready) {
        this.#lastOutcome = { ok: false, reason: desired.reason };
        metrics.converged.set(0);
        end();
        return { result: "error", retry: false };
      }
      const { config } = desired;
      verdicts = desired.verdicts;
      refused = desired.refused;
      if (this.#nothingToDo(reasons, config)) {
        // Most often the agent's own apply's kernel events: what it verified still holds.
        metrics.reconciles.inc({ result: "success" });
        end();
        logger.debug(
          { reasons: [...reasons], ms: clock.now() - started },
          "in sync: nothing changed since the last verified reconcile",
        );
        return { result: "ok", changed: false };
      }
      // The same object is the same configuration (the source keeps it while nothing changed): no
      // need to serialise 1,000 networks again for a drift repair or a follow-up reconcile.
      const fingerprint =
        this.#inForce?.config === config ? this.#inForce.fingerprint : JSON.stringify(config);
      const configChanged = this.#inForce?.fingerprint !== fingerprint;
      // The file is applied as written, a mark move too (its warning is logged: docs/agent.md).
      report = await engine.apply(config, { lockWaitMs: this.#options.lockWaitMs, moveMarks: true });
      this.#inForce = {
        config,
        fingerprint,
        interfaces:
          this.#inForce?.fingerprint === fingerprint
            ? this.#inForce.interfaces
            : new Set(
                config.networks.flatMap((n) => [
                  n.interface,
                  ...(n.vlan === undefined ? [] : [n.vlan.parent]),
                ]),
              ),
      };
      this.#waitingForNode = false;
      const changed = report.applied && report.changes.length > 0;
      this.#options.readCache?.verified?.();
      const nftTransaction = this.#options.readCache?.takeNftTransaction?.();
      const nft = nftTransaction === undefined ? {} : { nftTransaction };
      this.#recordSuccess(config, report);
      if (changed && !configChanged) {
        metrics.driftRepairs.inc();
        logger.warn(
          {
            changes: report.changes.length,
            // What was repaired, as plan prints it (the first 50: a flushed table is thousands).
            repaired: describeChanges(report.changes, report.payloads).slice(0, 50),
            reasons: [...reasons],
            ...nft,
          },
          "drift repaired",
        );
      } else if (changed) {
        logger.info(
          {
            changes: report.changes.length,
            networks: config.networks.length,
            reasons: [...reasons],
            ...nft,
          },
          "applied",
        );
      } else {
        logger.debug({ reasons: [...reasons] }, "in sync");
      }
      this.#reportConflicts(report);
      this.#reportWarnings(report);
      end();
      await source.converged();
      await writeNodeStatuses(
        { cluster: source.cluster, verdicts, refused, report, failure: undefined },
        metrics,
        logger,
      );
      logger.debug({ ms: clock.now() - started }, "reconcile done");
      this.#warmStateFile();
      return { result: "ok", changed };
    } catch (error) {
      // After a failure or a roll back, nothing read before it is trusted.
      this.#options.readCache?.forget();
      end();
      const kind = isSymrouteError(error) ? error.kind : "internal";
      this.#waitingForNode = kind === "dependency";
      metrics.reconciles.inc({ result: "error" });
      metrics.reconcileErrors.inc({ kind });
      metrics.converged.set(0);
      const message = error instanceof Error ? error.message : String(error);
      this.#lastOutcome = { ok: false, reason: `${kind}: ${message}` };
      logger.error(
        {
          kind,
          err: message,
          details: isSymrouteError(error) ? error.details : undefined,
          hint: isSymrouteError(error) ? error.hint : undefined,
          reasons: [...reasons],
        },
        "reconcile failed",
      );
      await writeNodeStatuses(
        { cluster: source.cluster, verdicts, refused, report, failure: message },
        metrics,
        logger,
      );
      return { result: "error", retry: !PERMANENT_KINDS.has(kind) };
    }
  };

  /**
   * A reconcile that only kernel monitor lines triggered, with the configuration in force and
   * converged (no conflicts), while the read cache proves that nothing it would read changed since
   * the reconcile that verified the node: the apply would find the node in sync, so it is not run.
   * Another process's change among those lines (a routing line stamped after the kept read, an nft
   * transaction of another process) makes the cache say no, and the reconcile runs.
   */
  #nothingToDo(reasons: ReadonlySet<string>, config: Config): boolean {
    return (
      reasons.size > 0 &&
      [...reasons].every((r) => r === KERNEL_REASON) &&
      this.#inForce?.config === config &&
      this.#lastOutcome.ok &&
      this.#options.readCache?.unchanged?.() === true
    );
  }

  #warmStateFile(): void {
    const stateFile = this.#options.stateFile;
    if (stateFile !== undefined) setImmediate(() => void stateFile.read().catch(() => undefined));
  }

  #recordSuccess(config: Config, report: ApplyReport): void {
    const { metrics } = this.#options;
    metrics.reconciles.inc({ result: "success" });
    metrics.changesApplied.inc(report.applied ? report.changes.length : 0);
    metrics.ownedObjects.set(report.ownedObjects);
    metrics.conflicts.set(report.conflicts.length);
    metrics.configLoaded.set(1);
    metrics.networks.set(config.networks.length);
    metrics.lastSuccess.set(Date.now() / 1000);
    // Foreign objects in the way: the node is not what the configuration asks; readiness says so.
    metrics.converged.set(report.conflicts.length === 0 ? 1 : 0);
    this.#lastOutcome =
      report.conflicts.length === 0
        ? { ok: true, reason: "converged" }
        : {
            ok: false,
            reason: `converged except ${counted(report.conflicts.length, "conflict")} with foreign objects: ${report.conflicts
              .slice(0, 3)
              .map((c) => `${c.object}: ${c.reason}`)
              .join("; ")}`,
          };
  }

  /**
   * Logs each plan warning at warn when it appears (not on every reconcile while it lasts), and
   * counts them; says whether the state file knows the node from before symroute.
   */
  #reportWarnings(report: ApplyReport): void {
    const { logger, metrics } = this.#options;
    const now = new Set(report.warnings);
    // The kind and networks beside the words, so log queries need not match message text.
    const details = new Map(report.warningDetails.map((d) => [d.message, d]));
    for (const warning of now) {
      if (this.#lastWarnings.has(warning)) continue;
      const detail = details.get(warning);
      logger.warn({ warning, kind: detail?.kind, networks: detail?.networks }, "plan warning");
    }
    this.#lastWarnings = now;
    metrics.planWarnings.set(now.size);
    const byKind = new Map<string, number>(WARNING_KINDS.map((kind) => [kind, 0]));
    for (const d of details.values()) byKind.set(d.kind, (byKind.get(d.kind) ?? 0) + 1);
    for (const [kind, count] of byKind) metrics.planWarningsByKind.set({ kind }, count);
    metrics.stateBaselineUnknown.set((report.state?.baselineUnknown ?? []).length > 0 ? 1 : 0);
  }

  /** Logs conflicts when they change (not on every resync). */
  #reportConflicts(report: ApplyReport): void {
    const { logger } = this.#options;
    const conflictText = JSON.stringify(report.conflicts);
    if (conflictText === this.#lastConflicts) return;
    if (report.conflicts.length > 0) {
      logger.warn({ conflicts: report.conflicts }, "foreign objects are in the way; left alone");
    } else if (this.#lastConflicts !== "" && this.#lastConflicts !== "[]") {
      logger.info("conflicts resolved");
    }
    this.#lastConflicts = conflictText;
  }
}
