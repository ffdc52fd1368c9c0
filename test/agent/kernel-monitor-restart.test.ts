// A kernel monitor that exits is restarted with backoff, and says so once the new process runs:
// the agent reconciles from a fresh read then (agent.ts), since what changed while the monitor was
// down came with no line. The first start and a restart that cannot spawn say nothing.

import { strict as assert } from "node:assert";
import { test } from "node:test";
import { startKernelMonitor } from "../../src/agent/kernel-monitor.ts";
import { pollUntil } from "./support/agent-process.ts";
import { FakeClock } from "./support/fake-clock.ts";

test("a monitor that exits is restarted after its backoff, and onRestart comes once the new one runs", async () => {
  const clock = new FakeClock();
  const exits: string[] = [];
  let restarts = 0;
  const monitor = startKernelMonitor({
    clock,
    // Exits at once, every time: each restart is one more exit.
    command: [process.execPath, "-e", "process.exit(3)"],
    onEvent: () => undefined,
    onExit: (detail) => exits.push(detail),
    onRestart: () => restarts++,
  });
  try {
    await pollUntil("the first exit", () => (exits.length === 1 ? true : undefined), 10_000, 10);
    assert.equal(restarts, 0, "the first start is no restart");
    assert.deepEqual(clock.pendingDelays(), [500]);
    await clock.advance(500);
    await pollUntil("the restart", () => (restarts === 1 ? true : undefined), 10_000, 10);
    await pollUntil("the second exit", () => (exits.length === 2 ? true : undefined), 10_000, 10);
    assert.match(exits[1] ?? "", /exited \(code 3\)/);
  } finally {
    monitor.stop();
  }
});

test("a restart that cannot spawn its tool is no restart", async () => {
  const clock = new FakeClock();
  const exits: string[] = [];
  let restarts = 0;
  const monitor = startKernelMonitor({
    clock,
    command: ["/nonexistent/symroute-test-monitor"],
    onEvent: () => undefined,
    onExit: (detail) => exits.push(detail),
    onRestart: () => restarts++,
  });
  try {
    await pollUntil("the first failure", () => (exits.length === 1 ? true : undefined), 10_000, 10);
    await clock.advance(500);
    await pollUntil("the second failure", () => (exits.length === 2 ? true : undefined), 10_000, 10);
    assert.equal(restarts, 0);
  } finally {
    monitor.stop();
  }
});
