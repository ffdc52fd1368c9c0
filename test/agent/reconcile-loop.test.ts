import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { backoffDelay } from "../../src/agent/backoff.ts";
import { ReconcileLoop, type LoopOutcome } from "../../src/agent/reconcile-loop.ts";
import { FakeClock, settle } from "./support/fake-clock.ts";

/** A reconcile that records its calls and answers from a script (default: ok, nothing changed). */
function recorder(script: LoopOutcome[] = []) {
  const calls: { at: number; reasons: string[] }[] = [];
  let release: (() => void) | undefined;
  let holdNext = false;
  const clock = new FakeClock();
  const reconcile = async (reasons: ReadonlySet<string>): Promise<LoopOutcome> => {
    calls.push({ at: clock.now(), reasons: [...reasons].sort() });
    if (holdNext) {
      holdNext = false;
      await new Promise<void>((resolve) => (release = resolve));
    }
    return script.shift() ?? { result: "ok", changed: false };
  };
  return {
    clock,
    calls,
    reconcile,
    hold: () => (holdNext = true),
    release: () => release?.(),
  };
}

describe("backoffDelay", () => {
  it("doubles from the initial delay and stops at the cap", () => {
    const options = { initialMs: 250, maxMs: 30_000 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) => backoffDelay(n, options)),
      [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000],
    );
    assert.equal(backoffDelay(0, options), 0);
  });
});

describe("ReconcileLoop", () => {
  it("runs once at start, then merges a burst of triggers into one run after the debounce window", async () => {
    const r = recorder();
    const loop = new ReconcileLoop({ reconcile: r.reconcile, clock: r.clock, debounceMs: 100, resyncMs: 0 });
    loop.start();
    await r.clock.advance(0);
    assert.equal(r.calls.length, 1);
    assert.deepEqual(r.calls[0]?.reasons, ["start"]);
    for (let i = 0; i < 50; i++) loop.trigger("kernel");
    loop.trigger("config-file");
    await r.clock.advance(99);
    assert.equal(r.calls.length, 1, "nothing before the window closes");
    await r.clock.advance(1);
    assert.equal(r.calls.length, 2);
    assert.deepEqual(r.calls[1]?.reasons, ["config-file", "kernel"]);
    await loop.stop();
  });

  it("runs an immediate trigger without the debounce window, with the triggers already waiting", async () => {
    const r = recorder();
    const loop = new ReconcileLoop({ reconcile: r.reconcile, clock: r.clock, debounceMs: 100, resyncMs: 0 });
    loop.start();
    await r.clock.advance(0);
    loop.trigger("kernel");
    await r.clock.advance(10);
    assert.equal(r.calls.length, 1, "the kernel trigger waits for its window");
    loop.trigger("config-file", { resetBackoff: true, immediate: true });
    await r.clock.advance(0);
    assert.equal(r.calls.length, 2, "the immediate trigger cut the window short");
    assert.deepEqual(r.calls[1]?.reasons, ["config-file", "kernel"]);
    // During a run: the next one starts as soon as it ends.
    r.hold();
    loop.trigger("config-file", { immediate: true });
    await r.clock.advance(0);
    assert.equal(r.calls.length, 3);
    loop.trigger("config-file", { immediate: true });
    r.release();
    await r.clock.advance(0);
    assert.equal(r.calls.length, 4, "no window after the run for an immediate trigger during it");
    // And an ordinary trigger waits for the window again.
    loop.trigger("config-file");
    await r.clock.advance(99);
    assert.equal(r.calls.length, 4);
    await r.clock.advance(1);
    assert.equal(r.calls.length, 5);
    await loop.stop();
  });

  it("tells of every trigger, and which ones were merged into a reconcile already due", async () => {
    const r = recorder();
    const seen: [string, boolean][] = [];
    const loop = new ReconcileLoop({
      reconcile: r.reconcile,
      clock: r.clock,
      debounceMs: 100,
      resyncMs: 0,
      onTrigger: (reason, coalesced) => seen.push([reason, coalesced]),
    });
    loop.start();
    await r.clock.advance(0);
    // A burst: the first opens the window, the other nine ride along.
    for (let i = 0; i < 10; i++) loop.trigger("kernel");
    await r.clock.advance(100);
    assert.equal(r.calls.length, 2);
    assert.deepEqual(
      seen.map(([, c]) => c),
      [false, true, true, true, true, true, true, true, true, true],
    );
    // During a run: the first schedules one more run, the rest are merged into it.
    seen.length = 0;
    r.hold();
    loop.trigger("config-file");
    await r.clock.advance(100);
    assert.equal(loop.state.running, true);
    loop.trigger("kernel");
    loop.trigger("kernel");
    loop.trigger("kubernetes:networks");
    assert.deepEqual(seen, [
      ["config-file", false],
      ["kernel", false],
      ["kernel", true],
      ["kubernetes:networks", true],
    ]);
    r.release();
    await r.clock.advance(100);
    assert.equal(r.calls.length, 4, "one more run for the three triggers during the run");
    await loop.stop();
  });

  it("never runs two reconciles at once; triggers during a run schedule exactly one more", async () => {
    const r = recorder();
    const loop = new ReconcileLoop({ reconcile: r.reconcile, clock: r.clock, debounceMs: 100, resyncMs: 0 });
    r.hold();
    loop.start();
    await r.clock.advance(0);
    assert.equal(r.calls.length, 1);
    for (let i = 0; i < 5; i++) loop.trigger("kernel");
    await r.clock.advance(1_000);
    assert.equal(r.calls.length, 1, "the first run is still going");
    assert.equal(loop.state.running, true);
    r.release();
    await r.clock.advance(100);
    assert.equal(r.calls.length, 2);
    await r.clock.advance(10_000);
    assert.equal(r.calls.length, 2, "exactly one more");
    await loop.stop();
  });

  it("backs off exponentially on retriable errors and resets after a success", async () => {
    const error: LoopOutcome = { result: "error", retry: true };
    const r = recorder([error, error, error, error, { result: "ok", changed: true }, error]);
    const loop = new ReconcileLoop({
      reconcile: r.reconcile,
      clock: r.clock,
      debounceMs: 100,
      resyncMs: 0,
      backoff: { initialMs: 250, maxMs: 1_000 },
    });
    loop.start();
    await r.clock.advance(10_000);
    const gaps = r.calls.slice(1).map((c, i) => c.at - (r.calls[i]?.at ?? 0));
    assert.deepEqual(gaps.slice(0, 4), [250, 500, 1000, 1000]);
    // After the success, a new trigger runs after the debounce and the next failure starts again at 250.
    loop.trigger("kernel");
    await r.clock.advance(100);
    const afterTrigger = r.calls.length;
    await r.clock.advance(250);
    assert.equal(r.calls.length, afterTrigger + 1);
    await loop.stop();
  });

  it("does not retry a permanent error, and a trigger during backoff does not shorten it", async () => {
    const r = recorder([{ result: "error", retry: false }]);
    const loop = new ReconcileLoop({ reconcile: r.reconcile, clock: r.clock, debounceMs: 100, resyncMs: 0 });
    loop.start();
    await r.clock.advance(60_000);
    assert.equal(r.calls.length, 1, "a conflict or an invalid config is not retried in a loop");
    await loop.stop();

    const s = recorder([
      { result: "error", retry: true },
      { result: "error", retry: true },
    ]);
    const loop2 = new ReconcileLoop({ reconcile: s.reconcile, clock: s.clock, debounceMs: 100, resyncMs: 0 });
    loop2.start();
    await s.clock.advance(0); // fails: retry in 250
    await s.clock.advance(250); // fails again: retry in 500
    assert.equal(s.calls.length, 2);
    loop2.trigger("kernel");
    await s.clock.advance(400);
    assert.equal(s.calls.length, 2, "kernel events do not cut the backoff short");
    loop2.trigger("config-file", { resetBackoff: true });
    await s.clock.advance(100);
    assert.equal(s.calls.length, 3, "a new configuration does");
    await loop2.stop();
  });

  it("resyncs periodically", async () => {
    const r = recorder();
    const loop = new ReconcileLoop({ reconcile: r.reconcile, clock: r.clock, resyncMs: 60_000 });
    loop.start();
    await r.clock.advance(180_000);
    assert.deepEqual(
      r.calls.map((c) => c.at),
      [0, 60_000, 120_000, 180_000],
    );
    assert.deepEqual(r.calls[1]?.reasons, ["resync"]);
    await loop.stop();
  });

  /** A started loop whose every run has to change something (a node someone keeps undoing). */
  async function alwaysRepairing(fightWindowMs?: number) {
    const changed: LoopOutcome = { result: "ok", changed: true };
    const r = recorder(Array.from({ length: 20 }, () => changed));
    const loop = new ReconcileLoop({
      reconcile: r.reconcile,
      clock: r.clock,
      debounceMs: 100,
      resyncMs: 0,
      churnLimit: 3,
      ...(fightWindowMs === undefined ? {} : { fightWindowMs }),
      backoff: { initialMs: 250, maxMs: 30_000 },
    });
    loop.start();
    await r.clock.advance(0);
    return { r, loop };
  }

  it("slows down when every run has to repair again (never fights at full speed)", async () => {
    const { r, loop } = await alwaysRepairing();
    // Someone undoes our work right after every run.
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      loop.trigger("kernel");
      const before = r.calls.length;
      while (r.calls.length === before) await r.clock.advance(50);
      times.push(r.calls.at(-1)?.at ?? 0);
    }
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    assert.ok(gaps[0] !== undefined && gaps[0] <= 150, `first repairs are prompt: ${gaps}`);
    assert.ok((gaps.at(-1) ?? 0) >= 2_000, `later repairs are spaced out: ${gaps}`);
    await loop.stop();
  });

  it("a drift long after the last repair is repaired promptly, even after a run of repairs", async () => {
    const { r, loop } = await alwaysRepairing(2_000);
    // Separate drifts, each well after the last repair (an operator's hand, not a controller).
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      await r.clock.advance(3_000);
      const asked = r.clock.now();
      loop.trigger("kernel");
      const before = r.calls.length;
      while (r.calls.length === before) await r.clock.advance(50);
      delays.push((r.calls.at(-1)?.at ?? 0) - asked);
    }
    assert.ok(
      delays.every((d) => d <= 150),
      `every repair within the debounce window: ${delays}`,
    );
    await loop.stop();
  });

  it("stop() cancels timers and waits for the run in progress", async () => {
    const r = recorder();
    const loop = new ReconcileLoop({ reconcile: r.reconcile, clock: r.clock, resyncMs: 1_000 });
    r.hold();
    loop.start();
    await r.clock.advance(0);
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false);
    r.release();
    await stopping;
    await r.clock.advance(10_000);
    assert.equal(r.calls.length, 1);
  });
});
