// Runs INSIDE a node namespace (bench/agent-churn.bench.ts starts it with `ip netns exec`): starts
// `symroute agent` as deployed, waits until it is converged and idle, measures its CPU for SECONDS
// while idle, then for SECONDS while pods come and go: PODS veth pairs a second are created and,
// a second later, deleted (through one `ip -batch` fed line by line, so the churn itself costs the
// agent nothing but the kernel events). Prints JSON (ChurnResults without the run's provenance).
// Args: CONFIG STATE_DIR SECONDS PODS_PER_SECOND

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { AGENT_NODE_FLAGS } from "../src/agent/node-flags.ts";
import { CLI } from "./lib.ts";

const [configPath, stateDir, secondsText, podsText] = process.argv.slice(2);
if (configPath === undefined || stateDir === undefined)
  throw new Error("usage: agent-churn-probe.ts CONFIG STATE_DIR SECONDS PODS_PER_SECOND");
const SECONDS = Number(secondsText ?? "30");
const PODS = Number(podsText ?? "10");
const PORT = 9478;
const BASE = `http://127.0.0.1:${PORT}`;
const NODE_FLAGS: readonly string[] =
  process.env["SRBENCH_AGENT_NODE_FLAGS"] === undefined
    ? AGENT_NODE_FLAGS
    : process.env["SRBENCH_AGENT_NODE_FLAGS"].split(" ").filter((f) => f !== "");

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function get(path: string): Promise<{ status: number; text: string } | undefined> {
  try {
    const res = await fetch(`${BASE}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, text: await res.text() };
  } catch {
    return undefined;
  }
}

/** The sum of a metric's samples whose labels contain `labels` (all of them with ""). */
async function metric(name: string, labels = ""): Promise<number> {
  const m = await get("/metrics");
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

/** CPU seconds (user + system) the process has used. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function settle(quietMs: number, limitMs = 60_000): Promise<void> {
  const deadline = now() + limitMs;
  let last = await metric("symroute_reconciles_total");
  let since = now();
  while (now() < deadline) {
    await pause(100);
    const count = await metric("symroute_reconciles_total");
    if (count !== last) {
      last = count;
      since = now();
    } else if (now() - since >= quietMs) return;
  }
}

async function main(): Promise<void> {
  const agent = spawn(
    process.execPath,
    [
      ...NODE_FLAGS,
      CLI,
      "agent",
      "-c",
      configPath as string,
      "--state-dir",
      stateDir as string,
      "--listen",
      `127.0.0.1:${PORT}`,
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NO_COLOR: "1" } },
  );
  let stderr = "";
  agent.stderr?.setEncoding("utf8");
  agent.stderr?.on("data", (c: string) => (stderr = (stderr + c).slice(-4000)));
  const pid = agent.pid as number;
  try {
    const deadline = now() + 120_000;
    while ((await get("/readyz"))?.status !== 200) {
      if (now() > deadline) throw new Error(`agent never became ready: ${stderr}`);
      await pause(50);
    }
    await settle(1000);
    // Idle, as long as the churn: the baseline (resync timer, metrics scrapes of this probe).
    const idleStart = cpuSeconds(pid);
    const idleAt = now();
    await pause(SECONDS * 1000);
    const idleCpuPercent = (100 * (cpuSeconds(pid) - idleStart)) / ((now() - idleAt) / 1000);

    const reconcilesBefore = await metric("symroute_reconciles_total");
    const eventsBefore = await metric("symroute_events_received_total", 'source="kernel"');
    const ignoredBefore = await metric("symroute_events_ignored_total", 'source="kernel"');
    const ip = spawn("ip", ["-force", "-batch", "-"], { stdio: ["pipe", "ignore", "pipe"] });
    let ipErrors = "";
    ip.stderr?.setEncoding("utf8");
    ip.stderr?.on("data", (c: string) => (ipErrors = (ipErrors + c).slice(-2000)));
    const cpuStart = cpuSeconds(pid);
    const startedAt = now();
    let created = 0;
    const alive: string[] = [];
    const intervalMs = 1000 / PODS;
    while (now() - startedAt < SECONDS * 1000) {
      const name = `pod${created % 100000}`;
      ip.stdin?.write(`link add ${name} type veth peer name ${name}p\nlink set ${name} up\n`);
      alive.push(name);
      created++;
      // Each pod lives about a second: PODS alive at any time.
      if (alive.length > PODS) ip.stdin?.write(`link del ${alive.shift() as string}\n`);
      const next = startedAt + created * intervalMs;
      await pause(Math.max(0, next - now()));
    }
    const elapsed = (now() - startedAt) / 1000;
    const cpuPercent = (100 * (cpuSeconds(pid) - cpuStart)) / elapsed;
    for (const name of alive) ip.stdin?.write(`link del ${name}\n`);
    ip.stdin?.end();
    await new Promise((resolve) => ip.on("exit", resolve));
    const reconciles = (await metric("symroute_reconciles_total")) - reconcilesBefore;
    const kernelEvents = (await metric("symroute_events_received_total", 'source="kernel"')) - eventsBefore;
    const kernelEventsIgnored =
      (await metric("symroute_events_ignored_total", 'source="kernel"')) - ignoredBefore;
    await settle(1000);
    const ready = await get("/readyz");
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssAfterMiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
    process.stdout.write(
      `${JSON.stringify({
        seconds: Math.round(elapsed),
        podsPerSecond: PODS,
        pairsCreated: created,
        cpuPercent,
        idleCpuPercent,
        reconciles,
        kernelEvents,
        kernelEventsIgnored,
        convergedAfter: ready?.status === 200,
        readyReason: ready?.text.trim(),
        rssAfterMiB,
        nodeFlags: NODE_FLAGS,
        ...(ipErrors === "" ? {} : { ipErrors }),
      })}\n`,
    );
  } finally {
    agent.kill("SIGTERM");
  }
}

await main();
