// A symroute agent as a child process inside a test namespace, with helpers to wait on it.

import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { REPO, run, type Netns } from "../../support/netns.ts";

export interface AgentProcess {
  readonly child: ChildProcess;
  output(): string;
  exited(timeoutMs: number): Promise<number | null>;
}

/**
 * Runs the CLI from source (tsx), so the test exercises the tree as it is, not a stale dist/;
 * `env` adds to the environment (a PATH with tool wrappers first).
 */
export function startAgentIn(ns: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): AgentProcess {
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      ns,
      process.execPath,
      "--import",
      "tsx",
      join(REPO, "src/cli/main.ts"),
      "agent",
      ...args,
    ],
    { cwd: REPO, env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout?.on("data", (b: Buffer) => (out += b.toString("utf8")));
  child.stderr?.on("data", (b: Buffer) => (out += b.toString("utf8")));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited: (timeoutMs) => Promise.race([exit, delay(timeoutMs).then(() => undefined as unknown as null)]),
  };
}

/**
 * The agent in `node` on `configText` (written to agent.yaml in the node's state directory), with
 * that state directory and `args`; killed when the test ends if it is still running.
 */
export function startNodeAgent(
  t: TestContext,
  node: Netns,
  configText: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): AgentProcess {
  const config = join(node.stateDir, "agent.yaml");
  writeFileSync(config, configText);
  const agent = startAgentIn(node.name, ["-c", config, "--state-dir", node.stateDir, ...args], env);
  t.after(() => {
    if (agent.child.exitCode === null) agent.child.kill("SIGKILL");
  });
  return agent;
}

/** Polls `check` until it holds (pollUntil); on time-out the error carries the agent's output. */
export async function untilAgent(
  agent: AgentProcess,
  what: string,
  check: () => boolean,
  timeoutMs = 20_000,
): Promise<void> {
  await pollUntil(what, () => (check() ? true : undefined), timeoutMs).catch((error: unknown) => {
    throw new Error(`${String(error)}\nagent output:\n${agent.output()}`);
  });
}

/** Waits until the agent's /readyz (`base` is its listen URL inside `ns`) answers 200. */
export function untilReady(agent: AgentProcess, ns: string, base: string): Promise<void> {
  return untilAgent(agent, "/readyz", () => nsGet(ns, `${base}/readyz`).status === 200, 30_000);
}

/** GET inside the namespace (the agent listens on the namespace's own loopback). */
export function nsGet(ns: string, url: string): { status: number; body: string } {
  const r = run(["ip", "netns", "exec", ns, "curl", "-s", "-m", "2", "-o", "-", "-w", "\n%{http_code}", url]);
  const lines = r.stdout.split("\n");
  const status = Number(lines.pop() ?? "0");
  return { status, body: lines.join("\n") };
}

export function metricValue(metricsText: string, name: string): number | undefined {
  const line = metricsText.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.split(" ").pop());
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined, at most `timeoutMs`. */
export async function pollUntil<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}
