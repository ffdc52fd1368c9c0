// Runs INSIDE a node namespace (bench/agent-churn.bench.ts starts it with `ip netns exec`): starts
// `symroute agent` as deployed, waits until it is converged and idle, measures its CPU for SECONDS
// while idle, then for SECONDS while pods come and go: PODS veth pairs a second are created and,
// a second later, deleted (through one `ip -batch` fed line by line, so the churn itself costs the
// agent nothing but the kernel events). Prints JSON (ChurnResults without the run's provenance).
// Args: CONFIG STATE_DIR SECONDS PODS_PER_SECOND

import { spawn } from "node:child_process";
import { NODE_FLAGS, now, pause, ProbedAgent } from "./agent-lib.ts";

const [configPath, stateDir, secondsText, podsText] = process.argv.slice(2);
if (configPath === undefined || stateDir === undefined)
  throw new Error("usage: agent-churn-probe.ts CONFIG STATE_DIR SECONDS PODS_PER_SECOND");
const SECONDS = Number(secondsText ?? "30");
const PODS = Number(podsText ?? "10");

async function main(): Promise<void> {
  const agent = new ProbedAgent({
    source: ["-c", configPath as string],
    stateDir: stateDir as string,
    listen: "127.0.0.1:9478",
    logLevel: "warn",
    stdout: "ignore",
  });
  try {
    if ((await agent.untilReady(120_000)) === undefined)
      throw new Error(`agent never became ready: ${agent.stderrTail()}`);
    await agent.settle(1000, 100);
    // Idle, as long as the churn: the baseline (resync timer, metrics scrapes of this probe).
    const idleStart = agent.cpuSeconds();
    const idleAt = now();
    await pause(SECONDS * 1000);
    const idleCpuPercent = (100 * (agent.cpuSeconds() - idleStart)) / ((now() - idleAt) / 1000);

    const reconcilesBefore = await agent.metric("symroute_reconciles_total");
    const eventsBefore = await agent.metric("symroute_events_received_total", 'source="kernel"');
    const ignoredBefore = await agent.metric("symroute_events_ignored_total", 'source="kernel"');
    const ip = spawn("ip", ["-force", "-batch", "-"], { stdio: ["pipe", "ignore", "pipe"] });
    let ipErrors = "";
    ip.stderr?.setEncoding("utf8");
    ip.stderr?.on("data", (c: string) => (ipErrors = (ipErrors + c).slice(-2000)));
    const cpuStart = agent.cpuSeconds();
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
    const cpuPercent = (100 * (agent.cpuSeconds() - cpuStart)) / elapsed;
    for (const name of alive) ip.stdin?.write(`link del ${name}\n`);
    ip.stdin?.end();
    await new Promise((resolve) => ip.on("exit", resolve));
    const reconciles = (await agent.metric("symroute_reconciles_total")) - reconcilesBefore;
    const kernelEvents =
      (await agent.metric("symroute_events_received_total", 'source="kernel"')) - eventsBefore;
    const kernelEventsIgnored =
      (await agent.metric("symroute_events_ignored_total", 'source="kernel"')) - ignoredBefore;
    await agent.settle(1000, 100);
    const ready = await agent.get("/readyz");
    const rssAfterMiB = agent.memoryMiB().rss;
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
    agent.stop();
  }
}

await main();
