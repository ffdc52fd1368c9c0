// A manual clock for the agent's Clock interface: timers fire only when the test advances time.

import type { Clock, TimerHandle } from "../../../src/agent/clock.ts";

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  #now = 0;
  #seq = 0;
  #pending: Pending[] = [];
  /** Awaited after every timer fires: lets real I/O started by the timer (a file read) finish first. */
  idle: () => Promise<void> = async () => {};

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): TimerHandle {
    const timer: Pending = { at: this.#now + ms, seq: this.#seq++, fn, cancelled: false };
    this.#pending.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  /** Delays of the timers still pending, from now. */
  pendingDelays(): number[] {
    return this.#pending.filter((t) => !t.cancelled).map((t) => t.at - this.#now);
  }

  /** Moves time forward, firing due timers in order and letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await settle();
      await this.idle();
      const due = this.#pending
        .filter((t) => !t.cancelled && t.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.#pending = this.#pending.filter((t) => t !== due);
      this.#now = due.at;
      due.fn();
    }
    this.#now = target;
    await settle();
    await this.idle();
  }
}

/** Lets every queued promise callback run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
