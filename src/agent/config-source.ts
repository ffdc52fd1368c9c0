// Where the agent's desired configuration comes from: the config file (global settings and local
// networks, re-read on every reconcile and watched for edits) and, with --kubernetes, the cluster's
// networks for this node (with the on-disk cache for a restart while the API server is unreachable).
// A refused file edit keeps the last good file in force and marks the configuration stale.

import { readFile } from "node:fs/promises";
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { ConfigTextMemo } from "../config/index.ts";
import type { Config } from "../config/schema.ts";
import { SymrouteError } from "../model/errors.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import {
  EMPTY_FILE,
  mergeClusterNetworks,
  rereadConfigFile,
  type FileResult,
  type MergedConfig,
} from "./desired-config.ts";
import { networksFromCluster, type NetworkVerdict } from "./kubernetes/cluster.ts";
import type { ClusterCache } from "./kubernetes/cluster-cache.ts";
import type { ClusterSnapshot, KubernetesSource } from "./kubernetes/source.ts";
import type { Logger } from "./logger.ts";
import type { AgentMetrics } from "./metrics.ts";

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

/** What one reconcile converges to, or why there is nothing to converge to yet. */
export type Desired =
  | {
      readonly ready: true;
      readonly config: Config;
      /** The cluster's per-network verdicts for this node (empty without Kubernetes). */
      readonly verdicts: readonly NetworkVerdict[];
      /** Cluster networks refused by the validator, with its words. */
      readonly refused: ReadonlyMap<string, string>;
    }
  /** Never seen the cluster: converging with the file alone would remove the cluster's networks. */
  | { readonly ready: false; readonly reason: string };

/** Why a source asks for a reconcile; `resetBackoff` for new configuration (a prompt attempt). */
export type Trigger = (reason: string, options?: { readonly resetBackoff?: boolean }) => void;

export interface ConfigSourceOptions {
  readonly configFile?: string;
  readonly kubernetes?: KubernetesWiring;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
}

export class ConfigSource {
  readonly #options: ConfigSourceOptions;
  #file: FileResult | undefined;
  #fileText: string | undefined;
  /** What the last read of the file leaves for the next: an edit re-reads only the entries it changed. */
  #fileMemo: ConfigTextMemo | undefined;
  /** The config file's last edit was refused: the configuration in force is an older one. */
  #stale: { readonly problems: readonly string[] } | undefined;
  #lastRefused = "";
  #kube: KubernetesSource | undefined;
  #lastSnapshot: ClusterSnapshot | undefined;
  #pendingCacheSave: ClusterSnapshot | undefined;
  #cacheAllowed = false;
  #cacheTimer: TimerHandle | undefined;
  #fileWatcher: FSWatcher | undefined;
  /** The last merge of file and cluster: a drift repair or a resync with nothing new reuses it. */
  #merged: { readonly file: FileResult; readonly key: string; readonly merged: MergedConfig } | undefined;

  constructor(options: ConfigSourceOptions) {
    this.#options = options;
    this.#file = options.configFile === undefined ? EMPTY_FILE : undefined;
  }

  /** The Kubernetes source and the view the last reconcile used, for the status writer. */
  get cluster():
    | { readonly source: KubernetesSource; readonly snapshot: ClusterSnapshot; readonly nodeName: string }
    | undefined {
    const source = this.#kube;
    const snapshot = this.#lastSnapshot;
    const nodeName = this.#options.kubernetes?.nodeName;
    if (source === undefined || snapshot === undefined || nodeName === undefined) return undefined;
    return { source, snapshot, nodeName };
  }

  /** Said beside readiness while a refused edit leaves an older configuration in force. */
  staleNote(): string {
    if (this.#stale === undefined) return "";
    return `; the running config is stale: the last edit of ${this.#options.configFile ?? "the config file"} was refused (${this.#stale.problems.join("; ")}), the last good configuration stays in force`;
  }

  /** Starts watching the file and the cluster; every change calls `trigger`. */
  start(trigger: Trigger): void {
    const { configFile, kubernetes, logger, metrics, clock } = this.#options;
    // Watch the directory, since editors and ConfigMap updates replace the file.
    if (configFile !== undefined) {
      const path = resolve(configFile);
      const name = basename(path);
      try {
        this.#fileWatcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
          if (changed === null || changed === name || changed === "..data") {
            trigger("config-file", { resetBackoff: true });
          }
        });
        this.#fileWatcher.on("error", (error) =>
          logger.warn({ err: String(error) }, "config file watch failed; resync still re-reads it"),
        );
      } catch (error) {
        logger.warn({ err: String(error) }, "cannot watch the config file; the periodic resync re-reads it");
      }
    }
    if (kubernetes !== undefined) {
      this.#kube = kubernetes.createSource({
        onChange: (what) => trigger(`kubernetes:${what}`, { resetBackoff: true }),
        onError: (what, error, retryInMs) => {
          metrics.sourceErrors.inc({ source: "kubernetes" });
          logger.warn(
            { what, err: error instanceof Error ? error.message : String(error), retryInMs },
            "Kubernetes API error; the last known cluster configuration stays in force",
          );
        },
      });
      this.#kube.start();
      if (kubernetes.cache !== undefined) {
        this.#cacheTimer = clock.after(kubernetes.cacheGraceMs ?? 15_000, () => {
          this.#cacheAllowed = true;
          if (this.#lastSnapshot === undefined) trigger("kubernetes-cache");
        });
      }
    }
  }

  async stop(): Promise<void> {
    this.#cacheTimer?.cancel();
    this.#fileWatcher?.close();
    await this.#kube?.stop();
  }

  /** Reads the file (again) and the cluster's view; throws when there is no valid file at all. */
  async desired(): Promise<Desired> {
    await this.#refreshFile();
    const file = this.#file;
    if (file === undefined || !file.ok) throw new SymrouteError("invalid-argument", "no valid configuration");
    const kube = this.#kube;
    if (kube === undefined) return { ready: true, config: file.config, verdicts: [], refused: new Map() };
    const { kubernetes, logger, metrics } = this.#options;
    const fresh = kube.snapshot();
    let snapshot = fresh ?? this.#lastSnapshot;
    if (snapshot === undefined && this.#cacheAllowed && kubernetes?.cache !== undefined) {
      const cached = await kubernetes.cache.load();
      if (cached !== undefined) {
        logger.warn(
          { savedAt: cached.savedAt },
          "Kubernetes API unreachable since start; using the cached cluster view",
        );
        snapshot = cached.snapshot;
      }
    }
    if (fresh !== undefined) this.#pendingCacheSave = fresh;
    if (snapshot === undefined) return { ready: false, reason: kube.waitingFor() };
    this.#lastSnapshot = snapshot;
    const verdicts = networksFromCluster(snapshot);
    const key = JSON.stringify(verdicts);
    const merged =
      this.#merged?.file === file && this.#merged.key === key
        ? this.#merged.merged
        : mergeClusterNetworks(file, verdicts, this.#merged?.merged.memo);
    this.#merged = { file, key, merged };
    const refusedText = JSON.stringify([...merged.refused]);
    if (refusedText !== this.#lastRefused && merged.refused.size > 0) {
      metrics.configErrors.inc({ source: "kubernetes" });
      logger.warn({ refused: Object.fromEntries(merged.refused) }, "cluster networks refused");
    }
    this.#lastRefused = refusedText;
    return { ready: true, config: merged.config, verdicts, refused: merged.refused };
  }

  /** After a successful converge: the cluster view it used becomes the cache for the next start. */
  async converged(): Promise<void> {
    const cache = this.#options.kubernetes?.cache;
    if (this.#pendingCacheSave === undefined || cache === undefined) return;
    const toSave = this.#pendingCacheSave;
    this.#pendingCacheSave = undefined;
    await cache.save(toSave).catch((error: unknown) => {
      this.#options.logger.warn({ err: String(error) }, "cannot write the cluster cache");
    });
  }

  /** Re-reads the file; a refused file keeps the last good one in force. */
  async #refreshFile(): Promise<void> {
    const { configFile, logger, metrics } = this.#options;
    if (configFile === undefined) return;
    let text: string;
    try {
      text = await readFile(configFile, "utf8");
    } catch (error) {
      if (this.#fileText !== undefined || this.#file !== undefined) {
        logger.error(
          { file: configFile, err: String(error) },
          "cannot read the config file; keeping the last good one",
        );
      }
      metrics.configErrors.inc({ source: "file" });
      if (this.#file === undefined) {
        throw new SymrouteError(
          "invalid-argument",
          `cannot read the config file ${configFile}: ${String(error)}`,
        );
      }
      return;
    }
    if (text === this.#fileText) return;
    this.#fileText = text;
    const { file: result, memo } = rereadConfigFile(text, configFile, this.#fileMemo);
    this.#fileMemo = memo;
    const previous = this.#file;
    if (result.ok) {
      if (previous !== undefined) logger.info({ file: configFile }, "config file changed");
      this.#file = result;
      this.#stale = undefined;
      metrics.configStale.set(0);
      return;
    }
    metrics.configErrors.inc({ source: "file" });
    if (previous?.ok === true) {
      this.#stale = { problems: result.problems };
      metrics.configStale.set(1);
    }
    logger.error(
      { file: configFile, problems: result.problems },
      previous?.ok === true
        ? "config file refused; the last good configuration stays in force"
        : "config file refused",
    );
    if (previous === undefined || !previous.ok) {
      this.#file = result;
      throw new SymrouteError("invalid-argument", `${configFile}: the configuration has problems`, {
        details: result.problems,
      });
    }
  }
}
