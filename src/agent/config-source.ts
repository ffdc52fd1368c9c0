// Where the agent's desired configuration comes from: the config file (global settings and local
// networks, re-read on every reconcile and watched for edits) and, with --kubernetes, the cluster's
// networks for this node (with the on-disk cache for a restart while the API server is unreachable).
// A refused file edit keeps the last good file in force and marks the configuration stale.

import { open } from "node:fs/promises";
import { existsSync, statSync, watch, type BigIntStats, type FSWatcher } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileErrorText } from "../adapters/file-error.ts";
import type { ConfigTextMemo } from "../config/index.ts";
import type { Config } from "../config/schema.ts";
import { SymrouteError } from "../model/errors.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import {
  configFromCluster,
  EMPTY_FILE,
  rereadConfigFile,
  type ClusterConfig,
  type FileResult,
} from "./desired-config.ts";
import type { NetworkVerdict } from "./kubernetes/cluster.ts";
import type { ClusterCache } from "./kubernetes/cluster-cache.ts";
import type { ClusterSnapshot, KubernetesSource } from "./kubernetes/source.ts";
import type { Logger } from "./logger.ts";
import type { AgentMetrics } from "./metrics.ts";
import { DEFAULT_DEBOUNCE_MS } from "./reconcile-loop.ts";

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
export type Trigger = (
  reason: string,
  options?: { readonly resetBackoff?: boolean; readonly immediate?: boolean },
) => void;

export interface ConfigSourceOptions {
  readonly configFile?: string;
  readonly kubernetes?: KubernetesWiring;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  /** The reconcile loop's debounce window: how long after a file event a read may be half an edit. */
  readonly debounceMs?: number;
}

/** Which file, and as it was: a read of it is the read of that very content. */
interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

function identityOf(stats: BigIntStats): FileIdentity {
  const { dev, ino, size, mtimeNs, ctimeNs } = stats;
  return { dev, ino, size, mtimeNs, ctimeNs };
}

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}

export class ConfigSource {
  readonly #options: ConfigSourceOptions;
  #file: FileResult | undefined;
  #fileText: string | undefined;
  /** What the last read of the file leaves for the next: an edit re-reads only the entries it changed. */
  #fileMemo: ConfigTextMemo | undefined;
  /** The config file's last edit was refused: the configuration in force is an older one. */
  /** `unreadable`: the file could not be read at all (deleted, unmounted), not refused. */
  #stale: { readonly problems: readonly string[]; readonly unreadable?: true } | undefined;
  #lastRefused = "";
  #kube: KubernetesSource | undefined;
  #lastSnapshot: ClusterSnapshot | undefined;
  #pendingCacheSave: ClusterSnapshot | undefined;
  #cacheAllowed = false;
  #cacheTimer: TimerHandle | undefined;
  #fileWatcher: FSWatcher | undefined;
  #trigger: Trigger | undefined;
  /**
   * The config file's last event while its debounce window lasts, and the file it put in place
   * complete (replaced whole by a rename), if it did: a read in that window uses only that file.
   */
  #fileEvent: { readonly complete: FileIdentity | undefined; readonly window: TimerHandle } | undefined;
  /** The directory's previous event in this turn of the event loop (a rename's first half). */
  #previousDirEvent: { readonly event: string; readonly name: string | null } | undefined;
  /** The last merge of file and cluster: a drift repair or a resync with nothing new reuses it. */
  #merged: ClusterConfig | undefined;

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
    const file = this.#options.configFile ?? "the config file";
    if (this.#stale.unreadable === true)
      return `; the running config is stale: ${file} cannot be read (${this.#stale.problems.join("; ")}), the last good configuration stays in force`;
    return `; the running config is stale: the last edit of ${file} was refused (${this.#stale.problems.join("; ")}), the last good configuration stays in force`;
  }

  /** Starts watching the file and the cluster; every change calls `trigger`. */
  start(trigger: Trigger): void {
    const { configFile, kubernetes, logger, metrics, clock } = this.#options;
    this.#trigger = trigger;
    // Watch the directory, since editors and ConfigMap updates replace the file.
    if (configFile !== undefined) {
      const path = resolve(configFile);
      const name = basename(path);
      try {
        this.#fileWatcher = watch(dirname(path), { persistent: false }, (event, changed) => {
          const previous = this.#previousDirEvent;
          if (previous === undefined) setImmediate(() => (this.#previousDirEvent = undefined));
          this.#previousDirEvent = { event, name: changed };
          if (changed === null || changed === name || changed === "..data") {
            const complete = event === "rename" ? replacedWhole(path, changed, previous) : undefined;
            // The window ends before the loop's debounce run, whose timer is set after this one.
            this.#fileEvent?.window.cancel();
            const window = clock.after(this.#options.debounceMs ?? DEFAULT_DEBOUNCE_MS, () => {
              this.#fileEvent = undefined;
            });
            this.#fileEvent = { complete, window };
            trigger("config-file", {
              resetBackoff: true,
              ...(complete === undefined ? {} : { immediate: true }),
            });
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
    this.#fileEvent?.window.cancel();
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
    const cluster = configFromCluster(file, snapshot, this.#merged);
    this.#merged = cluster;
    const { verdicts, merged } = cluster;
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

  /**
   * Whether a read that found the file as `before` and `after` can be used: it is not within the
   * debounce window after the file's last event, or it read the very file that event put in place
   * whole. Any in-place write, a new file written where the old one was deleted, or a change after
   * the event (its times or size differ) waits for the debounce, as every edit did before.
   */
  #settled(before: FileIdentity, after: FileIdentity | undefined): boolean {
    if (!this.#withinDebounce()) return true;
    const complete = this.#fileEvent?.complete;
    return (
      complete !== undefined && sameFile(before, complete) && after !== undefined && sameFile(after, complete)
    );
  }

  #withinDebounce(): boolean {
    return this.#fileEvent !== undefined;
  }

  /** Re-reads the file; a refused file keeps the last good one in force. */
  async #refreshFile(): Promise<void> {
    const { configFile, logger, metrics } = this.#options;
    if (configFile === undefined) return;
    let text: string;
    try {
      const read = await readWithIdentity(configFile, { statAfter: this.#withinDebounce() });
      if (!this.#settled(read.before, read.after)) {
        // Within the debounce window after an event that did not put a whole file in place: an
        // edit may be half written. The configuration in force stays until the debounced read.
        logger.debug({ file: configFile }, "config file being written; read again after the debounce");
        this.#trigger?.("config-file", { resetBackoff: true });
        return;
      }
      text = read.text;
    } catch (error) {
      const hint = configFileReadHint(configFile, error);
      if (this.#fileText !== undefined || this.#file !== undefined) {
        logger.error(
          { file: configFile, err: fileErrorText(error), hint },
          "cannot read the config file; keeping the last good one",
        );
      }
      metrics.configErrors.inc({ source: "file" });
      if (this.#file?.ok === true) {
        // As a refused edit: the configuration in force is no longer what the file says.
        this.#stale = { problems: [fileErrorText(error)], unreadable: true };
        metrics.configStale.set(1);
        // Read again whole when it is back, the same text too: that read decides whether it is stale.
        this.#fileText = undefined;
      }
      if (this.#file === undefined) {
        throw new SymrouteError(
          "invalid-argument",
          `cannot read the config file ${configFile}: ${fileErrorText(error)}`,
          { cause: error, hint },
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

/** What to do about a config file the agent cannot read (again), by its errno. */
function configFileReadHint(file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT")
    return `put the file back at ${file} (a ConfigMap: check that it is still mounted there); the agent reads it on its next event or resync`;
  if (code === "EACCES" || code === "EPERM")
    return `the agent's user may not read ${file}: fix its permissions; the agent reads it on its next event or resync`;
  if (code === "EISDIR") return `${file} is a directory: --config takes the file itself`;
  return `check ${file}; the agent reads it again on its next event or resync`;
}

/**
 * The file at `path` after a `rename` event named `changed`, when it is a file put there whole:
 * ConfigMap's `..data` swap (the kubelet writes the new files, then renames a symlink over
 * `..data`), or the second half of a rename into place (the directory's previous event in the same
 * turn of the event loop was a `rename` of another name, now gone: a temporary file moved over the
 * config file, as `mv`, `sed -i`, most editors and configuration tools write). A file created where
 * the old one was deleted, or one written in place, is neither. inotify's IN_MOVED_FROM and
 * IN_MOVED_TO of one rename come together, but Node names both `rename`, as it names a creation and
 * a deletion: an unrelated file deleted just before the config file is created and written looks
 * the same. The read that follows uses the file only if it is still exactly as stat'ed here.
 */
function replacedWhole(
  path: string,
  changed: string | null,
  previous: { readonly event: string; readonly name: string | null } | undefined,
): FileIdentity | undefined {
  const swapped = changed === "..data";
  const movedHere =
    changed === basename(path) &&
    previous !== undefined &&
    previous.event === "rename" &&
    previous.name !== null &&
    previous.name !== changed &&
    previous.name !== "..data" &&
    !existsSync(join(dirname(path), previous.name));
  if (!swapped && !movedHere) return undefined;
  try {
    return identityOf(statSync(path, { bigint: true }));
  } catch {
    return undefined;
  }
}

/**
 * The file's text, with its identity before the read and (`statAfter`: within the debounce window,
 * where the read must be of the very file an event put in place) after it.
 */
async function readWithIdentity(
  path: string,
  { statAfter }: { readonly statAfter: boolean },
): Promise<{
  readonly text: string;
  readonly before: FileIdentity;
  readonly after: FileIdentity | undefined;
}> {
  const handle = await open(path, "r");
  try {
    const before = identityOf(await handle.stat({ bigint: true }));
    const text = await handle.readFile("utf8");
    const after = statAfter ? identityOf(await handle.stat({ bigint: true })) : undefined;
    return { text, before, after };
  } finally {
    await handle.close();
  }
}
