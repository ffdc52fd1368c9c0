// The node agent: converges at start, again when the config file, the kernel or the cluster changes,
// and on a periodic full resync. Drift (an owned object changed by hand) is repaired; foreign objects
// in the way are reported, never fought. Stopping leaves routing in place unless asked to clean up.
//
// Its parts, each in a file of its own: the config source (file and cluster, config-source.ts), the
// reconcile loop (when to run: reconcile-loop.ts; one run: reconciler.ts, which writes node statuses
// with status-writer.ts), the kernel triggers (kernel-monitor.ts) and the HTTP endpoints (http.ts).

import type { Engine } from "../engine/engine.ts";
import { isSymrouteError } from "../model/errors.ts";
import { systemClock, type Clock } from "./clock.ts";
import { ConfigSource, type KubernetesWiring } from "./config-source.ts";
import { startAgentEndpoints, type AgentHttpServer, type ListenAddress, type Readiness } from "./http.ts";
import {
  kernelEventConcerns,
  kernelEventResetsBackoff,
  watchKernel,
  type KernelMonitor,
} from "./kernel-monitor.ts";
import { acquireAgentLock, AGENT_LOCK_NAME } from "./lock.ts";
import type { Logger } from "./logger.ts";
import { createMetrics, type AgentMetrics } from "./metrics.ts";
import { ReconcileLoop } from "./reconcile-loop.ts";
import type { ReadCache } from "./read-cache.ts";
import { Reconciler } from "./reconciler.ts";

export type { KubernetesWiring } from "./config-source.ts";

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
  /**
   * The read cache wrapped around the engine's kernel (read-cache.ts): fed the kernel monitors'
   * lines, forgotten on start, resync and failures. Without it every reconcile reads the node.
   */
  readonly readCache?: ReadCache;
  /**
   * Interfaces whose rp_filter symroute owns by its state (owned-sysctls.ts): their netconf events
   * count besides those of conf.all, conf.default and the networks' interfaces.
   */
  readonly rpFilterOwned?: () => ReadonlySet<string>;
  /** Read after each reconcile, so that the next finds it parsed (reconciler.ts). */
  readonly stateFile?: { read(): Promise<unknown> };
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

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { engine, logger } = options;
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics ?? createMetrics({ processMetrics: true });
  const lockWaitMs = options.lockWaitMs ?? 10_000;
  const lock = await acquireAgentLock(options.lockName ?? AGENT_LOCK_NAME);

  const source = new ConfigSource({
    ...(options.configFile === undefined ? {} : { configFile: options.configFile }),
    ...(options.kubernetes === undefined ? {} : { kubernetes: options.kubernetes }),
    clock,
    logger,
    metrics,
    ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
  });
  const { readCache } = options;
  const reconciler = new Reconciler({
    engine,
    source,
    clock,
    logger,
    metrics,
    lockWaitMs,
    ...(readCache === undefined ? {} : { readCache }),
    ...(options.stateFile === undefined ? {} : { stateFile: options.stateFile }),
  });
  const loop = new ReconcileLoop({
    reconcile: reconciler.reconcile,
    clock,
    onTrigger: (reason, coalesced) => {
      // The source without its detail (`kubernetes:networks` counts as kubernetes): few label values.
      const label = reason.split(":")[0] ?? reason;
      metrics.eventsReceived.inc({ source: label });
      if (coalesced) metrics.eventsCoalesced.inc({ source: label });
    },
    ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
    ...(options.resyncMs === undefined ? {} : { resyncMs: options.resyncMs }),
  });

  source.start((reason, triggerOptions) => loop.trigger(reason, triggerOptions));
  readCache?.watchHookedInterfaces(() => reconciler.interfacesInForce);
  const kernel: KernelMonitor | undefined =
    options.kernelEvents === false
      ? undefined
      : watchKernel({
          clock,
          onEvent: (line) => {
            const interfaces = reconciler.interfacesInForce;
            loop.trigger(
              "kernel",
              // Only while waiting for the node: the agent's own apply makes link events too (a
              // VLAN it creates, or deletes when it rolls back), which must not cut the backoff short.
              reconciler.waitingForNode &&
                interfaces !== undefined &&
                kernelEventResetsBackoff(line, interfaces)
                ? { resetBackoff: true }
                : {},
            );
          },
          // Until a configuration is in force every event counts.
          relevant: (line) => {
            const interfaces = reconciler.interfacesInForce;
            return (
              interfaces === undefined || kernelEventConcerns(line, interfaces, options.rpFilterOwned?.())
            );
          },
          onIgnored: () => metrics.eventsIgnored.inc({ source: "kernel" }),
          ...(readCache === undefined
            ? {}
            : {
                onRoutingLine: (line: string, live: boolean) => readCache.routingLine(line, live),
                onFirewallLine: (line: string, live: boolean) => readCache.firewallLine(line, live),
              }),
          onExit: (which, detail) => {
            readCache?.monitorDown(which === "kernel-monitor" ? "routing" : "firewall");
            metrics.sourceErrors.inc({ source: which });
            logger.warn(
              { detail },
              `${which === "kernel-monitor" ? "kernel" : "firewall"} monitor stopped; restarting it (periodic resync still runs)`,
            );
          },
          // Whatever changed while it was down (a rule deleted, a chain flushed; or the foreign nft
          // transaction that killed nft monitor) came with no event: read the node and repair now,
          // not at the resync. The restarted monitor keeps nothing valid until it shows a line.
          onRestart: (which) => {
            logger.info({ monitor: which }, "monitor restarted; reconciling from a fresh read");
            loop.trigger(which);
          },
          // The kernel dropped notifications (the monitor's buffer overflowed): nothing kept can be
          // proven good until the monitor shows a line again, and what changed may be drift.
          onLost: (which, detail) => {
            readCache?.monitorDown(which === "kernel-monitor" ? "routing" : "firewall");
            metrics.sourceErrors.inc({ source: which });
            logger.warn({ detail }, "monitor lost kernel notifications; reconciling from a fresh read");
            loop.trigger(which);
          },
        });

  let http: AgentHttpServer | undefined;
  try {
    if (options.listen !== undefined) {
      http = await startAgentEndpoints({
        listen: options.listen,
        registry: metrics.registry,
        readiness: () => reconciler.readiness(),
        logger,
      });
    }
  } catch (error) {
    kernel?.stop();
    await source.stop();
    await lock.release();
    throw error;
  }

  loop.start();
  logger.info(
    {
      configFile: options.configFile,
      listen: http?.address,
      kubernetes: options.kubernetes?.nodeName,
      kernelEvents: kernel !== undefined,
    },
    "agent started",
  );

  /**
   * --cleanup-on-exit: what `symroute delete` does, with its rule for a missing state file: objects
   * symroute owns but no state to restore the sysctls from is refused (logged with the file and the
   * sysctls, nothing removed, the error goes to the caller: a non-zero exit); nothing owned and no
   * state is nothing to do.
   */
  const cleanUp = async (): Promise<void> => {
    try {
      const report = await engine.remove(reconciler.configInForce, { lockWaitMs });
      logger.info(
        { changes: report.changes.length, state: report.state?.file },
        report.changes.length === 0 ? "nothing to remove" : "removed everything symroute owned",
      );
    } catch (error) {
      logger.error(
        {
          err: String(error),
          ...(isSymrouteError(error) ? { details: error.details, hint: error.hint } : {}),
        },
        "--cleanup-on-exit removed nothing",
      );
      throw error;
    }
  };

  let stopping: Promise<void> | undefined;
  return {
    http,
    metrics,
    readiness: () => reconciler.readiness(),
    loopState: () => loop.state,
    stop(stopOptions = {}) {
      stopping ??= (async () => {
        try {
          await loop.stop();
          kernel?.stop();
          await source.stop();
          if (stopOptions.cleanup === true) {
            logger.info("removing everything symroute owns (--cleanup-on-exit)");
            await cleanUp();
          } else {
            logger.info("stopping; routing stays in place");
          }
        } finally {
          // Whatever the clean-up did, the endpoints close and the namespace's lock is free again.
          await http?.close();
          await lock.release();
        }
      })();
      return stopping;
    },
  };
}
