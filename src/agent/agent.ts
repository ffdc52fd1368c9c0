// The node agent: converges at start, again when the config file, the kernel or the cluster changes,
// and on a periodic full resync. Drift (an owned object changed by hand) is repaired; foreign objects
// in the way are reported, never fought. Stopping leaves routing in place unless asked to clean up.

import { readFile } from "node:fs/promises";
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { describeChanges, type Engine, type ApplyReport } from "../engine/engine.ts";
import type { Config } from "../config/schema.ts";
import { isSymrouteError, SymrouteError } from "../model/errors.ts";
import { systemClock, type Clock, type TimerHandle } from "./clock.ts";
import { EMPTY_FILE, mergeClusterNetworks, readConfigFile, type FileResult } from "./desired-config.ts";
import {
  startHttpServer,
  isLoopback,
  type AgentHttpServer,
  type ListenAddress,
  type Readiness,
} from "./http.ts";
import {
  isSymrouteFirewallEvent,
  NFT_MONITOR_COMMAND,
  startKernelMonitor,
  type KernelMonitor,
} from "./kernel-monitor.ts";
import { networksFromCluster, type NetworkVerdict } from "./kubernetes/cluster.ts";
import type { ClusterCache } from "./kubernetes/cluster-cache.ts";
import type { NodeStatus } from "./kubernetes/resources.ts";
import type { ClusterSnapshot, KubernetesSource } from "./kubernetes/source.ts";
import { acquireAgentLock, AGENT_LOCK_NAME, type AgentLock } from "./lock.ts";
import type { Logger } from "./logger.ts";
import { createMetrics, type AgentMetrics } from "./metrics.ts";
import { ReconcileLoop, type LoopOutcome } from "./reconcile-loop.ts";

export interface KubernetesWiring {
  readonly nodeName: string;
  /** The last converged cluster view, for a restart while the API server is unreachable. */
  readonly cache?: ClusterCache;
  /** How long to wait for the API before falling back to the cache; default 15 s. */
  readonly cacheGraceMs?: number;
  readonly createSource: (callbacks: {
    readonly onChange: (what: string) => void;
    readonly onError: (what: string, error: unknown, retryInMs?: number) => void;
  }) => KubernetesSource;
}

export interface AgentOptions {
  /** Global settings and local networks; optional with Kubernetes (defaults then). */
  readonly configFile?: string;
  readonly engine: Engine;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly metrics?: AgentMetrics;
  /** Where /healthz, /readyz and /metrics listen; undefined: no server. */
  readonly listen?: ListenAddress;
  readonly resyncMs?: number;
  readonly debounceMs?: number;
  /** Watch kernel change events (`ip monitor`); on by default. */
  readonly kernelEvents?: boolean;
  readonly kubernetes?: KubernetesWiring;
  readonly lockName?: string;
  /** How long an apply waits for a `symroute apply` run in the same namespace. */
  readonly lockWaitMs?: number;
}

export interface Agent {
  readonly http: AgentHttpServer | undefined;
  readonly metrics: AgentMetrics;
  readiness(): Readiness;
  /** Whether a reconcile is running, and what is scheduled next (for tests and debugging). */
  loopState(): ReconcileLoop["state"];
  /** Stops every watcher and the server; routing stays unless `cleanup` (then everything owned goes). */
  stop(options?: { readonly cleanup?: boolean }): Promise<void>;
}

/** Failures that retrying cannot fix: wait for the next trigger or resync instead of backing off. */
const PERMANENT_KINDS = new Set(["invalid-argument", "conflict", "not-supported", "permission"]);

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { engine, logger } = options;
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics ?? createMetrics({ processMetrics: true });
  const lock: AgentLock = await acquireAgentLock(options.lockName ?? AGENT_LOCK_NAME);

  let file: FileResult | undefined = options.configFile === undefined ? EMPTY_FILE : undefined;
  let fileText: string | undefined;
  let inForce: { config: Config; fingerprint: string } | undefined;
  let lastOutcome: { ok: boolean; reason: string } = { ok: false, reason: "starting" };
  /** The config file's last edit was refused: the configuration in force is an older one. */
  let stale: { readonly problems: readonly string[] } | undefined;
  let lastConflicts = "";
  let lastRefused = "";
  let kube: KubernetesSource | undefined;
  let lastSnapshot: ClusterSnapshot | undefined;
  let pendingCacheSave: ClusterSnapshot | undefined;
  let cacheAllowed = false;

  const readiness = (): Readiness => {
    if (inForce === undefined)
      return { ready: false, reason: `no configuration in force: ${lastOutcome.reason}` };
    // Still ready with a stale configuration (the node keeps the last good one), but it says so.
    const staleNote =
      stale === undefined
        ? ""
        : `; the running config is stale: the last edit of ${options.configFile ?? "the config file"} was refused (${stale.problems.join("; ")}), the last good configuration stays in force`;
    return lastOutcome.ok
      ? { ready: true, reason: `converged${staleNote}` }
      : { ready: false, reason: lastOutcome.reason + staleNote };
  };

  /** Re-reads the file; a refused file keeps the last good one in force. */
  async function refreshFile(): Promise<void> {
    if (options.configFile === undefined) return;
    let text: string;
    try {
      text = await readFile(options.configFile, "utf8");
    } catch (error) {
      if (fileText !== undefined || file !== undefined) {
        logger.error(
          { file: options.configFile, err: String(error) },
          "cannot read the config file; keeping the last good one",
        );
      }
      metrics.configErrors.inc({ source: "file" });
      if (file === undefined) {
        throw new SymrouteError(
          "invalid-argument",
          `cannot read the config file ${options.configFile}: ${String(error)}`,
        );
      }
      return;
    }
    if (text === fileText) return;
    fileText = text;
    const result = readConfigFile(text, options.configFile);
    if (result.ok) {
      if (file !== undefined) logger.info({ file: options.configFile }, "config file changed");
      file = result;
      stale = undefined;
      metrics.configStale.set(0);
      return;
    }
    metrics.configErrors.inc({ source: "file" });
    if (file?.ok === true) {
      stale = { problems: result.problems };
      metrics.configStale.set(1);
    }
    logger.error(
      { file: options.configFile, problems: result.problems },
      file?.ok === true
        ? "config file refused; the last good configuration stays in force"
        : "config file refused",
    );
    if (file === undefined || !file.ok) {
      file = result;
      throw new SymrouteError("invalid-argument", `${options.configFile}: the configuration has problems`, {
        details: result.problems,
      });
    }
  }

  async function reconcile(reasons: ReadonlySet<string>): Promise<LoopOutcome> {
    const started = clock.now();
    const end = metrics.reconcileDuration.startTimer();
    let verdicts: readonly NetworkVerdict[] = [];
    let refused: ReadonlyMap<string, string> = new Map();
    let report: ApplyReport | undefined;
    try {
      await refreshFile();
      if (file === undefined || !file.ok)
        throw new SymrouteError("invalid-argument", "no valid configuration");
      let config = file.config;
      if (kube !== undefined) {
        const fresh = kube.snapshot();
        let snapshot = fresh ?? lastSnapshot;
        if (snapshot === undefined && cacheAllowed && options.kubernetes?.cache !== undefined) {
          const cached = await options.kubernetes.cache.load();
          if (cached !== undefined) {
            logger.warn(
              { savedAt: cached.savedAt },
              "Kubernetes API unreachable since start; using the cached cluster view",
            );
            snapshot = cached.snapshot;
          }
        }
        if (fresh !== undefined) pendingCacheSave = fresh;
        if (snapshot === undefined) {
          // Never seen the cluster: converging with the file alone would remove the cluster's networks.
          lastOutcome = { ok: false, reason: kube.waitingFor() };
          metrics.converged.set(0);
          end();
          return { result: "error", retry: false };
        }
        lastSnapshot = snapshot;
        verdicts = networksFromCluster(snapshot);
        const merged = mergeClusterNetworks(file, verdicts);
        config = merged.config;
        refused = merged.refused;
        const refusedText = JSON.stringify([...refused]);
        if (refusedText !== lastRefused && refused.size > 0) {
          metrics.configErrors.inc({ source: "kubernetes" });
          logger.warn({ refused: Object.fromEntries(refused) }, "cluster networks refused");
        }
        lastRefused = refusedText;
      }
      const fingerprint = JSON.stringify(config);
      const configChanged = inForce?.fingerprint !== fingerprint;
      report = await engine.apply(config, { lockWaitMs: options.lockWaitMs ?? 10_000 });
      inForce = { config, fingerprint };
      const changed = report.applied && report.changes.length > 0;
      metrics.reconciles.inc({ result: "success" });
      metrics.changesApplied.inc(report.applied ? report.changes.length : 0);
      metrics.ownedObjects.set(report.ownedObjects);
      metrics.conflicts.set(report.conflicts.length);
      metrics.configLoaded.set(1);
      metrics.networks.set(config.networks.length);
      metrics.lastSuccess.set(Date.now() / 1000);
      // Foreign objects in the way: the node is not what the configuration asks; readiness says so.
      metrics.converged.set(report.conflicts.length === 0 ? 1 : 0);
      if (changed && !configChanged) {
        metrics.driftRepairs.inc();
        logger.warn(
          {
            changes: report.changes.length,
            // What was repaired, as plan prints it (the first 50: a flushed table is thousands).
            repaired: describeChanges(report.changes, report.payloads).slice(0, 50),
            reasons: [...reasons],
          },
          "drift repaired",
        );
      } else if (changed) {
        logger.info(
          { changes: report.changes.length, networks: config.networks.length, reasons: [...reasons] },
          "applied",
        );
      } else {
        logger.debug({ reasons: [...reasons] }, "in sync");
      }
      const conflictText = JSON.stringify(report.conflicts);
      if (conflictText !== lastConflicts) {
        if (report.conflicts.length > 0) {
          logger.warn({ conflicts: report.conflicts }, "foreign objects are in the way; left alone");
        } else if (lastConflicts !== "" && lastConflicts !== "[]") {
          logger.info("conflicts resolved");
        }
        lastConflicts = conflictText;
      }
      for (const w of report.warnings) logger.debug({ warning: w }, "plan warning");
      lastOutcome =
        report.conflicts.length === 0
          ? { ok: true, reason: "converged" }
          : {
              ok: false,
              reason: `converged except ${report.conflicts.length} conflict(s) with foreign objects: ${report.conflicts
                .slice(0, 3)
                .map((c) => `${c.object}: ${c.reason}`)
                .join("; ")}`,
            };
      end();
      if (pendingCacheSave !== undefined && options.kubernetes?.cache !== undefined) {
        const toSave = pendingCacheSave;
        pendingCacheSave = undefined;
        await options.kubernetes.cache.save(toSave).catch((error: unknown) => {
          logger.warn({ err: String(error) }, "cannot write the cluster cache");
        });
      }
      await writeStatuses(verdicts, refused, report, undefined);
      logger.debug({ ms: clock.now() - started }, "reconcile done");
      return { result: "ok", changed };
    } catch (error) {
      end();
      const kind = isSymrouteError(error) ? error.kind : "internal";
      metrics.reconciles.inc({ result: "error" });
      metrics.reconcileErrors.inc({ kind });
      metrics.converged.set(0);
      const message = error instanceof Error ? error.message : String(error);
      lastOutcome = { ok: false, reason: `${kind}: ${message}` };
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
      await writeStatuses(verdicts, refused, report, message);
      return { result: "error", retry: !PERMANENT_KINDS.has(kind) };
    }
  }

  /** Per-network status for this node, written only when it differs from what the object shows. */
  async function writeStatuses(
    verdicts: readonly NetworkVerdict[],
    refused: ReadonlyMap<string, string>,
    report: ApplyReport | undefined,
    failure: string | undefined,
  ): Promise<void> {
    const source = kube;
    const snapshot = lastSnapshot;
    const nodeName = options.kubernetes?.nodeName;
    if (source === undefined || snapshot === undefined || nodeName === undefined) return;
    for (const verdict of verdicts) {
      const object = snapshot.networks.find((n) => n.metadata.name === verdict.network);
      const previous = object?.status?.nodes?.[nodeName];
      let next: Omit<NodeStatus, "lastTransitionTime"> | undefined;
      const refusal = refused.get(verdict.network);
      if (verdict.state === "not-selected") {
        next = undefined;
      } else if (verdict.state === "invalid") {
        next = { converged: false, reason: verdict.reason, message: verdict.message };
      } else if (verdict.state === "not-announced") {
        next = { converged: true, reason: "NotAnnounced", message: verdict.message };
      } else if (refusal !== undefined) {
        next = { converged: false, reason: "InvalidSpec", message: refusal };
      } else if (failure !== undefined) {
        next = { converged: false, reason: "ApplyFailed", message: failure };
      } else if (report !== undefined && report.conflicts.length > 0) {
        next = {
          converged: false,
          reason: "Conflict",
          message: report.conflicts
            .slice(0, 3)
            .map((c) => `${c.object}: ${c.reason}`)
            .join("; "),
        };
      } else {
        const decisions = (report?.networks ?? []).filter((d) => d.name === verdict.network);
        const how = decisions.map((d) => `IPv${d.family} ${d.method}: ${d.reason}`).join("; ");
        next = { converged: true, reason: "Converged", message: how === "" ? "in sync" : how };
      }
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

  const loop = new ReconcileLoop({
    reconcile,
    clock,
    onTrigger: (reason, coalesced) => {
      // The source without its detail (`kubernetes:networks` counts as kubernetes): few label values.
      const source = reason.split(":")[0] ?? reason;
      metrics.eventsReceived.inc({ source });
      if (coalesced) metrics.eventsCoalesced.inc({ source });
    },
    ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
    ...(options.resyncMs === undefined ? {} : { resyncMs: options.resyncMs }),
  });

  // Config file: watch the directory, since editors and ConfigMap updates replace the file.
  let fileWatcher: FSWatcher | undefined;
  if (options.configFile !== undefined) {
    const path = resolve(options.configFile);
    const name = basename(path);
    try {
      fileWatcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name || changed === "..data") {
          loop.trigger("config-file", { resetBackoff: true });
        }
      });
      fileWatcher.on("error", (error) =>
        logger.warn({ err: String(error) }, "config file watch failed; resync still re-reads it"),
      );
    } catch (error) {
      logger.warn({ err: String(error) }, "cannot watch the config file; the periodic resync re-reads it");
    }
  }

  let monitor: KernelMonitor | undefined;
  let firewallMonitor: KernelMonitor | undefined;
  let cacheTimer: TimerHandle | undefined;
  if (options.kernelEvents !== false) {
    monitor = startKernelMonitor({
      clock,
      onEvent: () => loop.trigger("kernel"),
      onExit: (detail) => {
        metrics.sourceErrors.inc({ source: "kernel-monitor" });
        logger.warn({ detail }, "kernel monitor stopped; restarting it (periodic resync still runs)");
      },
    });
    // Drift in symroute's own firewall objects (a table deleted by hand) is repaired at once too,
    // not only at the next resync.
    firewallMonitor = startKernelMonitor({
      clock,
      command: NFT_MONITOR_COMMAND,
      filter: isSymrouteFirewallEvent,
      optional: true,
      onEvent: () => loop.trigger("kernel"),
      onExit: (detail) => {
        metrics.sourceErrors.inc({ source: "firewall-monitor" });
        logger.warn({ detail }, "firewall monitor stopped; restarting it (periodic resync still runs)");
      },
    });
  }

  if (options.kubernetes !== undefined) {
    kube = options.kubernetes.createSource({
      onChange: (what) => loop.trigger(`kubernetes:${what}`, { resetBackoff: true }),
      onError: (what, error, retryInMs) => {
        metrics.sourceErrors.inc({ source: "kubernetes" });
        logger.warn(
          { what, err: error instanceof Error ? error.message : String(error), retryInMs },
          "Kubernetes API error; the last known cluster configuration stays in force",
        );
      },
    });
    kube.start();
    if (options.kubernetes.cache !== undefined) {
      cacheTimer = clock.after(options.kubernetes.cacheGraceMs ?? 15_000, () => {
        cacheAllowed = true;
        if (lastSnapshot === undefined) loop.trigger("kubernetes-cache");
      });
    }
  }

  let http: AgentHttpServer | undefined;
  try {
    if (options.listen !== undefined) {
      if (!isLoopback(options.listen.host)) {
        logger.warn(
          { listen: options.listen },
          "the health and metrics endpoints listen on a non-loopback address (they are read-only)",
        );
      }
      http = await startHttpServer({ listen: options.listen, registry: metrics.registry, readiness });
    }
  } catch (error) {
    cacheTimer?.cancel();
    monitor?.stop();
    firewallMonitor?.stop();
    fileWatcher?.close();
    await kube?.stop();
    await lock.release();
    throw error;
  }

  loop.start();
  logger.info(
    {
      configFile: options.configFile,
      listen: http?.address,
      kubernetes: options.kubernetes?.nodeName,
      kernelEvents: monitor !== undefined,
    },
    "agent started",
  );

  let stopping: Promise<void> | undefined;
  return {
    http,
    metrics,
    readiness,
    loopState: () => loop.state,
    stop(stopOptions = {}) {
      stopping ??= (async () => {
        await loop.stop();
        cacheTimer?.cancel();
        monitor?.stop();
        firewallMonitor?.stop();
        fileWatcher?.close();
        await kube?.stop();
        if (stopOptions.cleanup === true) {
          logger.info("removing everything symroute owns (--cleanup-on-exit)");
          await engine.remove(inForce?.config, { lockWaitMs: options.lockWaitMs ?? 10_000 });
        } else {
          logger.info("stopping; routing stays in place");
        }
        await http?.close();
        await lock.release();
      })();
      return stopping;
    },
  };
}
