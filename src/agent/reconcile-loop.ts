// The agent's scheduler: merges bursts of triggers into one reconcile, never runs two at once (a
// trigger during a run schedules exactly one more), backs off exponentially after failures, slows
// down when every run has to change something again (someone else keeps undoing our work: repair,
// but never fight at full speed), and runs a full resync on a timer.

import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.ts";
import type { Clock, TimerHandle } from "./clock.ts";

/** What one reconcile reports back to the loop. */
export type LoopOutcome =
  | { readonly result: "ok"; readonly changed: boolean }
  /** `retry: false` for failures that retrying cannot fix (invalid config, a conflict): wait for a trigger. */
  | { readonly result: "error"; readonly retry: boolean };

export type Reconcile = (reasons: ReadonlySet<string>) => Promise<LoopOutcome>;

export interface ReconcileLoopOptions {
  readonly reconcile: Reconcile;
  readonly clock: Clock;
  /** Window in which triggers are merged. */
  readonly debounceMs?: number;
  readonly backoff?: BackoffOptions;
  /** Full resync period; 0 turns it off. */
  readonly resyncMs?: number;
  /** Consecutive runs that changed something before the loop starts slowing down. */
  readonly churnLimit?: number;
  /**
   * A trigger this long after the last run that changed something is a new event, not someone
   * undoing our work: it ends the slow-down (which is for fights only).
   */
  readonly fightWindowMs?: number;
  /**
   * Told of every trigger; `coalesced` when it starts no reconcile of its own (merged into one
   * already scheduled or running, or waiting for a retry): what the agent's metrics count.
   */
  readonly onTrigger?: (reason: string, coalesced: boolean) => void;
}

export interface TriggerOptions {
  /** Forget earlier failures (a new configuration deserves a prompt attempt). */
  readonly resetBackoff?: boolean;
  /**
   * Nothing more of this change is coming (a config file replaced whole, config-source.ts): run
   * without waiting for the debounce window.
   */
  readonly immediate?: boolean;
}

/**
 * The window in which triggers are merged. One netlink batch (an `ip -batch`, an editor's write and
 * rename, an informer's relist) arrives within a few milliseconds; a pod's veth is filtered out
 * before it gets here (kernel-monitor.ts). 100 ms was most of a drift repair's latency (issue 15:
 * median under 150 ms), 20 ms still merges each burst (docs/agent.md).
 */
export const DEFAULT_DEBOUNCE_MS = 20;

type Scheduled = { readonly kind: "debounce" | "retry" | "resync" | "churn"; readonly handle: TimerHandle };

export class ReconcileLoop {
  readonly #reconcile: Reconcile;
  readonly #clock: Clock;
  readonly #debounceMs: number;
  readonly #backoff: BackoffOptions;
  readonly #resyncMs: number;
  readonly #churnLimit: number;
  readonly #fightWindowMs: number;
  readonly #onTrigger: (reason: string, coalesced: boolean) => void;
  #scheduled: Scheduled | undefined;
  #running: Promise<void> | undefined;
  #dirty = false;
  /** A trigger since the last run's start asked for no debounce. */
  #immediate = false;
  #stopped = true;
  #failures = 0;
  #churn = 0;
  #lastChangeAt: number | undefined;
  #reasons = new Set<string>();
  #runs = 0;

  constructor(options: ReconcileLoopOptions) {
    this.#reconcile = options.reconcile;
    this.#clock = options.clock;
    this.#debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#resyncMs = options.resyncMs ?? 60_000;
    this.#churnLimit = options.churnLimit ?? 3;
    this.#fightWindowMs = options.fightWindowMs ?? 2_000;
    this.#onTrigger = options.onTrigger ?? (() => undefined);
  }

  /** Starts with an immediate reconcile. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#reasons.add("start");
    this.#schedule("debounce", 0);
  }

  trigger(reason: string, options: TriggerOptions = {}): void {
    const lateEvent = this.#isLateEvent();
    this.#onTrigger(reason, this.#coalesces(options, lateEvent));
    this.#reasons.add(reason);
    if (options.resetBackoff === true) {
      this.#failures = 0;
      this.#churn = 0;
    }
    if (lateEvent) this.#churn = 0;
    if (options.immediate === true) this.#immediate = true;
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#dirty = true;
      return;
    }
    const kind = this.#scheduled?.kind;
    if (kind === "debounce") {
      // The window's other triggers run with it, now.
      if (options.immediate === true) this.#schedule("debounce", 0);
      return;
    }
    if (kind === "retry" && options.resetBackoff !== true) return;
    if (kind === "churn" && options.resetBackoff !== true && !lateEvent) return;
    this.#scheduleNext();
  }

  /** Long after the last change, while no run is in progress: not a fight (see fightWindowMs). */
  #isLateEvent(): boolean {
    return (
      this.#running === undefined &&
      this.#lastChangeAt !== undefined &&
      this.#clock.now() - this.#lastChangeAt > this.#fightWindowMs
    );
  }

  /** Whether a trigger now would start no reconcile of its own (the branches of `trigger`). */
  #coalesces(options: TriggerOptions, lateEvent: boolean): boolean {
    if (this.#stopped) return true;
    if (this.#running !== undefined) return this.#dirty;
    const kind = this.#scheduled?.kind;
    if (kind === "debounce") return true;
    if (kind === "retry") return options.resetBackoff !== true;
    if (kind === "churn") return options.resetBackoff !== true && !lateEvent;
    return false;
  }

  /** Cancels timers and waits for a reconcile in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#scheduled?.handle.cancel();
    this.#scheduled = undefined;
    await this.#running;
  }

  /** For tests and metrics. */
  get state(): {
    readonly runs: number;
    readonly failures: number;
    readonly running: boolean;
    readonly scheduled: string | undefined;
  } {
    return {
      runs: this.#runs,
      failures: this.#failures,
      running: this.#running !== undefined,
      scheduled: this.#scheduled?.kind,
    };
  }

  #schedule(kind: Scheduled["kind"], ms: number, reason?: string): void {
    this.#scheduled?.handle.cancel();
    const handle = this.#clock.after(ms, () => {
      this.#scheduled = undefined;
      if (reason !== undefined) this.#reasons.add(reason);
      this.#run();
    });
    this.#scheduled = { kind, handle };
  }

  /** After a trigger: the debounce window, or longer while every run keeps having to repair. */
  #scheduleNext(): void {
    if (this.#churn > this.#churnLimit) {
      this.#schedule("churn", backoffDelay(this.#churn - this.#churnLimit, this.#backoff));
    } else {
      this.#schedule("debounce", this.#immediate ? 0 : this.#debounceMs);
    }
  }

  #run(): void {
    if (this.#stopped || this.#running !== undefined) return;
    const reasons = this.#reasons;
    this.#reasons = new Set();
    this.#dirty = false;
    this.#immediate = false;
    this.#runs++;
    this.#running = this.#reconcile(reasons)
      .catch((): LoopOutcome => ({ result: "error", retry: true }))
      .then((outcome) => {
        this.#running = undefined;
        this.#after(outcome);
      });
  }

  #after(outcome: LoopOutcome): void {
    if (this.#stopped) return;
    if (outcome.result === "error") {
      this.#churn = 0;
      if (outcome.retry) {
        this.#failures++;
        this.#schedule("retry", backoffDelay(this.#failures, this.#backoff));
        return;
      }
      this.#failures = 0;
    } else {
      this.#failures = 0;
      this.#churn = outcome.changed ? this.#churn + 1 : 0;
      if (outcome.changed) this.#lastChangeAt = this.#clock.now();
    }
    if (this.#dirty) {
      this.#scheduleNext();
      return;
    }
    if (this.#resyncMs > 0) this.#schedule("resync", this.#resyncMs, "resync");
  }
}
