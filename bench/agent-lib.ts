// Shared by the agent probes (bench/agent-probe.ts, agent-churn-probe.ts, agent-warm-probe.ts), which
// run inside a node namespace: `symroute agent` started as deployed, its HTTP endpoints on the
// namespace's loopback, its memory and CPU from /proc, and lines of a child's output as they come.

import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { AGENT_NODE_FLAGS } from "../src/agent/node-flags.ts";
import { CLI } from "./lib.ts";

/** Node flags for the agent process, as its deployment runs it (SRBENCH_AGENT_NODE_FLAGS overrides). */
export const NODE_FLAGS: readonly string[] =
  process.env["SRBENCH_AGENT_NODE_FLAGS"] === undefined
    ? AGENT_NODE_FLAGS
    : process.env["SRBENCH_AGENT_NODE_FLAGS"].split(" ").filter((f) => f !== "");

export const now = (): number => Number(process.hrtime.bigint()) / 1e6;
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Calls `onLines` with each chunk's complete lines and the time the chunk came. */
export function onLines(stream: Readable | null, onLines: (lines: string[], at: number) => void): void {
  let pending = "";
  stream?.setEncoding("utf8");
  stream?.on("data", (chunk: string) => {
    const at = now();
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    onLines(lines, at);
  });
}

export interface AgentOptions {
  /** Where the networks come from: `-c FILE`, or the Kubernetes flags. */
  readonly source: readonly string[];
  readonly stateDir: string;
  /** The listen address, host:port. */
  readonly listen: string;
  readonly logLevel: string;
  readonly extraArgs?: readonly string[];
  /** The agent's log lines (stdout) to the probe, or dropped. */
  readonly stdout: "pipe" | "ignore";
}

export class ProbedAgent {
  readonly child: ChildProcess;
  readonly pid: number;
  /** When it was spawned (now()). */
  readonly startedAt: number;
  /** The exit code once it has exited. */
  exited: number | null | undefined;
  private stderr = "";
  private readonly base: string;

  constructor(options: AgentOptions) {
    this.base = `http://${options.listen}`;
    this.startedAt = now();
    this.child = spawn(
      process.execPath,
      [
        ...NODE_FLAGS,
        CLI,
        "agent",
        ...options.source,
        "--state-dir",
        options.stateDir,
        "--listen",
        options.listen,
        "--log-level",
        options.logLevel,
        ...(options.extraArgs ?? []),
      ],
      { stdio: ["ignore", options.stdout, "pipe"], env: { ...process.env, NO_COLOR: "1" } },
    );
    this.pid = this.child.pid as number;
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (c: string) => (this.stderr = (this.stderr + c).slice(-4000)));
    this.child.on("exit", (code) => (this.exited = code));
  }

  /** The last 4,000 characters the agent wrote to stderr. */
  stderrTail(): string {
    return this.stderr;
  }

  async get(path: string): Promise<{ status: number; text: string } | undefined> {
    try {
      const res = await fetch(`${this.base}${path}`, { signal: AbortSignal.timeout(2000) });
      return { status: res.status, text: await res.text() };
    } catch {
      return undefined;
    }
  }

  /** The sum of a metric's samples whose labels contain `labels` (all of them with ""). */
  async metric(name: string, labels = ""): Promise<number> {
    const m = await this.get("/metrics");
    let total = 0;
    for (const line of m?.text.split("\n") ?? [])
      if (
        line.startsWith(name) &&
        (line[name.length] === " " || line[name.length] === "{") &&
        line.includes(labels)
      )
        total += Number(line.split(" ").pop());
    return total;
  }

  /** Ms from spawn until /readyz answers 200, polled every 20 ms; undefined if it exits or `limitMs` passes. */
  async untilReady(limitMs: number): Promise<number | undefined> {
    const deadline = this.startedAt + limitMs;
    while (now() < deadline && this.exited === undefined) {
      if ((await this.get("/readyz"))?.status === 200) return now() - this.startedAt;
      await pause(20);
    }
    return undefined;
  }

  /** Waits until no reconcile ran for `quietMs` (at most `limitMs`): the agent is idle. */
  async settle(quietMs: number, pollMs: number, limitMs = 60_000): Promise<void> {
    const deadline = now() + limitMs;
    let last = await this.metric("symroute_reconciles_total");
    let since = now();
    while (now() < deadline) {
      await pause(pollMs);
      const count = await this.metric("symroute_reconciles_total");
      if (count !== last) {
        last = count;
        since = now();
      } else if (now() - since >= quietMs) return;
    }
  }

  /** VmRSS and VmHWM, MiB. */
  memoryMiB(): { rss: number; hwm: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const kb = (field: string): number =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
  }

  /** CPU seconds (user + system) the agent has used. */
  cpuSeconds(): number {
    const stat = readFileSync(`/proc/${this.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command name.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}
