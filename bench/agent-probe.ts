// Runs INSIDE a node namespace (bench/agent.bench.ts starts it with `ip netns exec`): starts
// `symroute agent`, waits for /readyz, then deletes owned `ip rule`s one at a time and times, from
// `ip -o monitor rule`, the deletion event to the event of the rule being back. Prints JSON.
// Args: CONFIG STATE_DIR TRIALS [file|kubernetes]
// In `kubernetes` mode the networks come from SymrouteNetwork objects served by a small API server of
// the probe's own (the tests' fake, on loopback in this namespace), and the file keeps only the
// global settings: the agent runs with --kubernetes, so it loads and uses the Kubernetes client.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeApiServer } from "../test/agent/support/fake-apiserver.ts";
import { DEFAULT_DEBOUNCE_MS } from "../src/agent/reconcile-loop.ts";
import { NODE_FLAGS, now, onLines, pause, ProbedAgent } from "./agent-lib.ts";

const [configPath, stateDir, trialsText, modeText] = process.argv.slice(2);
if (configPath === undefined || stateDir === undefined)
  throw new Error("usage: agent-probe.ts CONFIG STATE_DIR TRIALS [file|kubernetes]");
const MODE = modeText === "kubernetes" ? "kubernetes" : "file";
const TRIALS = Number(trialsText ?? "0");
// The agent's default, written out so the report can state it.
const DEBOUNCE_MS = Number(process.env["SRBENCH_DEBOUNCE_MS"] ?? DEFAULT_DEBOUNCE_MS);

/** The agent's own view of its memory (process metrics on /metrics), MiB. */
async function heapMiB(agent: ProbedAgent): Promise<Record<string, number>> {
  const m = await agent.get("/metrics");
  const out: Record<string, number> = {};
  const wanted: Record<string, string> = {
    nodejs_heap_size_used_bytes: "heapUsed",
    nodejs_heap_size_total_bytes: "heapTotal",
    nodejs_external_memory_bytes: "external",
  };
  for (const line of m?.text.split("\n") ?? []) {
    const [name, value] = line.split(" ");
    const key = name === undefined ? undefined : wanted[name];
    if (key !== undefined) out[key] = Number(value) / 2 ** 20;
  }
  return out;
}

interface MonitorEvent {
  readonly at: number;
  readonly line: string;
}

function startMonitor(): {
  child: ChildProcess;
  events: MonitorEvent[];
  waitFor: (
    match: (l: string) => boolean,
    from: number,
    limitMs: number,
  ) => Promise<MonitorEvent | undefined>;
} {
  const events: MonitorEvent[] = [];
  const waiters: (() => void)[] = [];
  const child = spawn("ip", ["-o", "monitor", "rule"], {
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, LC_ALL: "C" },
  });
  onLines(child.stdout, (lines, at) => {
    for (const line of lines) if (line.trim() !== "") events.push({ at, line });
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (
    match: (l: string) => boolean,
    from: number,
    limitMs: number,
  ): Promise<MonitorEvent | undefined> => {
    const deadline = now() + limitMs;
    for (;;) {
      const hit = events.slice(from).find((e) => match(e.line));
      if (hit !== undefined) return hit;
      const left = deadline - now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  return { child, events, waitFor };
}

interface OwnedRule {
  readonly priority: number;
  readonly fwmark: string;
  readonly fwmask: string;
  readonly table: string;
}

function ownedRules(): OwnedRule[] {
  const r = spawnSync("ip", ["-j", "-4", "rule", "show"], { encoding: "utf8" });
  const rules = JSON.parse(r.stdout) as {
    priority: number;
    fwmark?: string;
    fwmask?: string;
    table?: string;
    protocol?: string;
  }[];
  return rules
    .filter((x) => x.fwmark !== undefined && Number(x.table) >= 20000)
    .map((x) => ({
      priority: x.priority,
      fwmark: x.fwmark as string,
      fwmask: x.fwmask ?? "0xffffffff",
      table: String(x.table),
    }));
}

/** The bench config's networks (one flow-style line each) as SymrouteNetwork objects. */
function networkObjects(
  configText: string,
): { metadata: { name: string; generation: number }; spec: unknown }[] {
  const objects = [];
  for (const line of configText.split("\n")) {
    const m = /- \{ name: (\S+), addresses: \[([^\]]+)\], interface: (\S+), gateway: ([^ }]+) \}/.exec(line);
    if (m === null) continue;
    objects.push({
      metadata: { name: m[1] as string, generation: 1 },
      spec: { addresses: [m[2] as string], interface: m[3] as string, gateway: [m[4] as string] },
    });
  }
  return objects;
}

/** The API server and the agent's arguments for Kubernetes mode: the file keeps the global settings. */
async function kubernetesMode(): Promise<{ server: FakeApiServer; args: string[] }> {
  const text = readFileSync(configPath as string, "utf8");
  const server = new FakeApiServer()
    .collection("/apis/symroute.io/v1alpha1/symroutenetworks", networkObjects(text))
    .collection("/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools")
    .collection("/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements")
    .collection("/api/v1/nodes", [{ metadata: { name: "bench-node", labels: {} } }]);
  await server.start();
  const globals = join(stateDir as string, "globals.yaml");
  const settings = text.split("\n").filter((l) => !l.startsWith("  -") && !l.startsWith("networks:"));
  writeFileSync(globals, `${[...settings, "networks: []"].join("\n")}\n`);
  const kubeconfig = join(stateDir as string, "kubeconfig.yaml");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      // Plain HTTP on loopback: client-node allows it only with skip-TLS-verify set.
      `clusters: [{ name: bench, cluster: { server: "${server.url}", insecure-skip-tls-verify: true } }]`,
      "users: [{ name: agent, user: { token: bench } }]",
      "contexts: [{ name: bench, context: { cluster: bench, user: agent } }]",
      "current-context: bench",
      "",
    ].join("\n"),
  );
  return {
    server,
    args: ["--kubernetes", "--node-name", "bench-node", "--kubeconfig", kubeconfig, "-c", globals],
  };
}

async function main(): Promise<void> {
  const kube = MODE === "kubernetes" ? await kubernetesMode() : undefined;
  const agent = new ProbedAgent({
    source: kube?.args ?? ["-c", configPath as string],
    stateDir: stateDir as string,
    listen: "127.0.0.1:9477",
    logLevel: "warn",
    extraArgs: ["--debounce", `${DEBOUNCE_MS}ms`],
    stdout: "ignore",
  });
  const out: Record<string, unknown> = { debounceMs: DEBOUNCE_MS, nodeFlags: NODE_FLAGS };
  try {
    const readyMs = await agent.untilReady(MODE === "kubernetes" ? 120_000 : 300_000);
    if (readyMs === undefined)
      throw new Error(`agent never became ready (exit ${String(agent.exited)}): ${agent.stderrTail()}`);
    out["readyMs"] = readyMs;
    await agent.settle(500, 50);
    out["memoryAfterStart"] = { ...agent.memoryMiB(), ...(await heapMiB(agent)) };
    const rules = ownedRules();
    out["ownedRules"] = rules.length;
    const monitor = startMonitor();
    const latencies: number[] = [];
    const failures: string[] = [];
    // RSS every 10 trials: a steady climb would be a leak, a plateau is the heap settling.
    const rssSeries: number[] = [];
    try {
      await pause(100); // the monitor subscribes asynchronously; give it a moment before the first trial
      for (let t = 0; t < TRIALS && rules.length > 0; t++) {
        const rule = rules[(t * 7919) % rules.length] as OwnedRule;
        const from = monitor.events.length;
        const ours = (l: string): boolean =>
          l.includes(`lookup ${rule.table} `) || l.endsWith(`lookup ${rule.table}`);
        const del = spawnSync(
          "ip",
          [
            "rule",
            "del",
            "priority",
            String(rule.priority),
            "fwmark",
            `${rule.fwmark}/${rule.fwmask}`,
            "lookup",
            rule.table,
          ],
          {
            encoding: "utf8",
          },
        );
        if (del.status !== 0) {
          failures.push(`trial ${t}: ip rule del failed: ${del.stderr.trim()}`);
          continue;
        }
        const gone = await monitor.waitFor((l) => l.startsWith("Deleted") && ours(l), from, 5_000);
        const back = await monitor.waitFor((l) => !l.startsWith("Deleted") && ours(l), from, 30_000);
        if (gone === undefined || back === undefined) {
          failures.push(
            `trial ${t}: rule for table ${rule.table} ${gone === undefined ? "deletion not seen" : "not back within 30 s"}`,
          );
        } else latencies.push(back.at - gone.at);
        await agent.settle(300, 50);
        if ((t + 1) % 10 === 0) rssSeries.push(agent.memoryMiB().rss);
      }
    } finally {
      monitor.child.kill("SIGTERM");
    }
    out["latenciesMs"] = latencies;
    out["failures"] = failures;
    out["rssSeriesMiB"] = rssSeries;
    out["memoryAfterTrials"] = { ...agent.memoryMiB(), ...(await heapMiB(agent)) };
  } finally {
    agent.stop();
    await kube?.server.stop();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
