// Time behind a small interface so that the reconcile loop's debounce, backoff and resync can be
// driven by fake timers in tests (node:test mock.timers replaces the globals used here).

export type TimerHandle = { readonly cancel: () => void };

export interface Clock {
  /** Milliseconds since an arbitrary origin; only differences are meaningful. */
  now(): number;
  /** Calls `fn` once after `ms`; the handle cancels it. The timer never keeps the process alive. */
  after(ms: number, fn: () => void): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    // Looked up at call time, so node:test's mock.timers (which patches the globals) takes effect.
    const handle = globalThis.setTimeout(fn, ms);
    handle.unref?.();
    return { cancel: () => globalThis.clearTimeout(handle) };
  },
};
