// A kernel monitor that exits is restarted with backoff, and says so once the new process runs:
// the agent reconciles from a fresh read then (agent.ts), since what changed while the monitor was
// down came with no line. The first start and a restart that cannot spawn say nothing.

import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

test("a running monitor that says it lost notifications (either tool's words) calls onLost, and that line is no event", async () => {
  const clock = new FakeClock();
  const events: string[] = [];
  const lost: string[] = [];
  // As measured (docs/agent.md): ip on stderr, nft on stdout; then a line of an event, then it waits.
  const script = [
    `process.stderr.write("netlink receive error No buffer space available (105)\\n");`,
    `process.stdout.write("# ERROR: We lost some netlink events!\\n[RULE]1001: from all lookup 7\\n");`,
    `setInterval(() => undefined, 1000);`,
  ].join("");
  const monitor = startKernelMonitor({
    clock,
    command: [process.execPath, "-e", script],
    onEvent: (line) => events.push(line),
    onLost: (detail) => lost.push(detail),
  });
  try {
    await pollUntil("both losses and the event", () =>
      lost.length === 2 && events.length === 1 ? true : undefined,
    );
    assert.deepEqual(lost.sort(), [
      "# ERROR: We lost some netlink events!",
      "netlink receive error No buffer space available (105)",
    ]);
    assert.deepEqual(events, ["[RULE]1001: from all lookup 7"]);
  } finally {
    monitor.stop();
  }
});

test("a line read after the monitor's exit was seen comes as an event that is not live", async () => {
  const clock = new FakeClock();
  const dir = mkdtempSync(join(tmpdir(), "symroute-monitor-"));
  const go = join(dir, "go");
  const events: { line: string; live: boolean }[] = [];
  let exited = false;
  // The tool exits at once; a process it leaves behind holds its stdout and writes a line once the
  // test says so (after the exit was seen): Node may give a child's output after its exit.
  const late = `const fs = require("node:fs"); const t = setInterval(() => { if (fs.existsSync(${JSON.stringify(go)})) { clearInterval(t); process.stdout.write("[RULE]late\\n"); } else if (!fs.existsSync(${JSON.stringify(dir)})) process.exit(0); }, 10);`;
  const tool = `require("node:child_process").spawn(process.execPath, ["-e", ${JSON.stringify(late)}], { stdio: ["ignore", "inherit", "ignore"], detached: true }).unref(); process.stdout.write("[RULE]early\\n"); process.exit(0);`;
  const monitor = startKernelMonitor({
    clock,
    command: [process.execPath, "-e", tool],
    onEvent: (line, live) => events.push({ line, live }),
    onExit: () => (exited = true),
  });
  try {
    await pollUntil("the tool's exit", () => (exited ? true : undefined), 10_000, 10);
    writeFileSync(go, "");
    await pollUntil(
      "the late line",
      () => (events.some((e) => e.line === "[RULE]late") ? true : undefined),
      10_000,
      10,
    );
    assert.deepEqual(
      events.find((e) => e.line === "[RULE]late"),
      { line: "[RULE]late", live: false },
    );
  } finally {
    monitor.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
