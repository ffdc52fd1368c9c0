// Runs INSIDE a node namespace (bench/agent.bench.ts starts it with `ip netns exec`): the warm
// reconcile of issue 15 item 4. A running agent (as deployed) converged on N networks gets its config
// file edited; the time runs from the edit to the agent's "applied" log line (the reconcile done:
// read, plan, payloads run, verified). Cases: one network added to N, and all N added to an agent
// running with none (a full converge by a warm agent). Beside each, the same payloads fed straight
// to the tools (`ip -batch`, `nft -f`, run side by side as the engine runs them), from the same node
// state, taken from `symroute plan --payloads`; after each tools run its inverse puts the node back.
// The agent runs its nft change as a partial transaction when it knows what its tables hold
// (docs/agent.md, "Partial nft transactions"; its `applied` line says which): the tools are timed
// with that partial script (renderNftIncremental of the same two whole-table scripts) and with the
// whole-table one, and `toolsMs` is the kind the agent ran in every trial (the whole-table one if
// any trial of the agent's was whole). One edit pair before the trials lets the agent's nft monitor
// see one of its transactions (until then its transactions are whole).
// Prints JSON: { cases: [{ label, agentMs[], toolsMs[], toolsPartialMs[], toolsFullMs[], agentTransactions[],
// agentCpuMs[] (the agent's CPU per edit, until 1.5 s after it) }] }.
// Args: STATE_DIR NETWORKS TRIALS

import { spawn, spawnSync } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NODE_FLAGS, now, onLines, ProbedAgent } from "./agent-lib.ts";
import { CLI, configText } from "./lib.ts";
import { renderNftIncremental, scriptChains } from "../src/render/nft-incremental.ts";

const [stateArg, networksText, trialsText] = process.argv.slice(2);
if (stateArg === undefined) throw new Error("usage: agent-warm-probe.ts STATE_DIR NETWORKS TRIALS");
const stateDir: string = stateArg;
const NETWORKS = Number(networksText ?? "1000");
const TRIALS = Number(trialsText ?? "5");

const configFile = join(stateDir, "agent.yaml");
const texts = {
  base: configText(NETWORKS),
  plusOne: configText(NETWORKS + 1),
  empty: configText(0).replace(/^networks:$/m, "networks: []"),
};
const toolsState = join(stateDir, "tools-state");

interface Payloads {
  readonly ip: Record<string, readonly string[]>;
  readonly firewall: readonly { readonly tool: string; readonly script: string }[];
}

/** The file replaced whole (a temporary file renamed over it): the agent never reads half an edit. */
function writeAtomically(file: string, text: string): void {
  const temp = `${file}.tmp`;
  writeFileSync(temp, text);
  renameSync(temp, file);
}

/** `p` with its whole-table nft script turned into the partial transaction from `from`'s tables. */
function partialOf(p: Payloads, from: Payloads): Payloads {
  const nft = (q: Payloads): string => q.firewall.find((f) => f.tool === "nft")?.script ?? "";
  // No nft payload: the plan changes no firewall (the empty node): no tables before.
  const before = nft(from) === "" ? new Map() : scriptChains(nft(from));
  const after = scriptChains(nft(p));
  if (before === undefined || after === undefined)
    throw new Error("a payload is not a whole-table nft script");
  const script = renderNftIncremental(before, after);
  if (script === undefined) throw new Error("the two nft scripts do not differ");
  return { ...p, firewall: p.firewall.map((f) => (f.tool === "nft" ? { ...f, script } : f)) };
}

function symroute(args: readonly string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args, "--state-dir", toolsState], {
    encoding: "utf8",
    maxBuffer: 256 * 2 ** 20,
  });
  if (r.status !== 0 && r.status !== 2) throw new Error(`symroute ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function payloadsFor(text: string): Payloads {
  const file = join(stateDir, "tools.yaml");
  writeFileSync(file, text);
  return (JSON.parse(symroute(["plan", "-c", file, "-o", "json", "--payloads"])) as { payloads: Payloads })
    .payloads;
}

function run(argv: readonly string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr?.on("data", (b: Buffer) => (err += b.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(" ")}: ${err}`))));
    child.stdin?.end(input);
  });
}

/** The payloads through the tools, side by side (ms); `inverse` undoes the ip part afterwards. */
async function feed(p: Payloads): Promise<number> {
  const jobs: (() => Promise<void>)[] = [];
  for (const [family, lines] of Object.entries(p.ip))
    if (lines.length > 0)
      jobs.push(() =>
        run(["ip", ...(family === "ipv6" ? ["-6"] : []), "-batch", "-"], `${lines.join("\n")}\n`),
      );
  for (const f of p.firewall) {
    const input = f.script;
    jobs.push(() =>
      run(f.tool === "iptables-restore" ? ["iptables-restore", "--noflush"] : ["nft", "-f", "-"], input),
    );
  }
  const started = now();
  await Promise.all(jobs.map((j) => j()));
  return now() - started;
}

async function undoIp(p: Payloads): Promise<void> {
  for (const [family, lines] of Object.entries(p.ip)) {
    const inverse = [...lines].reverse().map((l) => l.replace(/^(rule|route) add /, "$1 del "));
    if (inverse.length > 0)
      await run(
        ["ip", "-force", ...(family === "ipv6" ? ["-6"] : []), "-batch", "-"],
        `${inverse.join("\n")}\n`,
      );
  }
}

async function main(): Promise<void> {
  // Tools first, on the empty node: the full payload (whole-table, and as the partial transaction
  // from the empty tables), then (with the base applied) one network more, both ways.
  const none = payloadsFor(texts.empty);
  const full = payloadsFor(texts.base);
  const fullPartial = partialOf(full, none);
  const fullTools: number[] = [];
  const fullPartialTools: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    fullTools.push(await feed(full));
    await undoIp(full);
    spawnSync("nft", ["flush", "ruleset"]);
    fullPartialTools.push(await feed(fullPartial));
    await undoIp(full);
    spawnSync("nft", ["flush", "ruleset"]);
  }
  symroute(["apply", "-c", join(stateDir, "tools.yaml")]);
  const one = payloadsFor(texts.plusOne);
  const onePartial = partialOf(one, full);
  // Back from one network more to the base tables (not timed).
  const oneBack = partialOf(full, one);
  const oneTools: number[] = [];
  const onePartialTools: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    oneTools.push(await feed(one));
    await undoIp(one);
    await feed({ ip: {}, firewall: oneBack.firewall });
    onePartialTools.push(await feed(onePartial));
    await undoIp(one);
    await feed({ ip: {}, firewall: oneBack.firewall });
  }
  // Back to an empty node for the agent.
  symroute(["delete", "-c", join(stateDir, "tools.yaml")]);
  spawnSync("nft", ["flush", "ruleset"]);

  writeAtomically(configFile, texts.base);
  const agent = new ProbedAgent({
    source: ["-c", configFile],
    stateDir: join(stateDir, "agent-state"),
    listen: "127.0.0.1:9479",
    logLevel: "info",
    stdout: "pipe",
  });
  const applied: number[] = [];
  /** How each applied reconcile ran its nft transaction (`nftTransaction` of its line). */
  const transactions: string[] = [];
  const failures: string[] = [];
  let waiting: (() => void) | undefined;
  onLines(agent.child.stdout, (lines, at) => {
    for (const line of lines) {
      if (line.includes('"msg":"applied"')) {
        applied.push(at);
        transactions.push(/"nftTransaction":"([^"]+)"/.exec(line)?.[1] ?? "none");
        waiting?.();
      } else if (line.includes('"level":"error"')) failures.push(line.slice(0, 300));
    }
  });
  const nextApplied = (limitMs: number): Promise<number | undefined> => {
    const seen = applied.length;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), limitMs);
      waiting = () => {
        if (applied.length > seen) {
          clearTimeout(timer);
          resolve(applied[seen]);
        }
      };
    });
  };
  /**
   * The edit's time to `applied`, how the agent ran its nft transaction, and the CPU the agent used
   * from the edit until 1.5 s after it (the follow-ups and the state file's re-read included; in
   * the kernel's 10 ms ticks): less at the mercy of other work on the machine than the wall time.
   */
  const edit = async (text: string): Promise<{ ms: number; nft: string; cpuMs: number } | undefined> => {
    const seen = applied.length;
    const done = nextApplied(120_000);
    const cpuBefore = agent.cpuSeconds();
    const started = now();
    writeAtomically(configFile, text);
    const at = await done;
    // Let the file watcher's later events and the agent's status settle before the next edit.
    await new Promise((r) => setTimeout(r, 1500));
    const cpuMs = Math.round((agent.cpuSeconds() - cpuBefore) * 1000);
    return at === undefined ? undefined : { ms: at - started, nft: transactions[seen] ?? "none", cpuMs };
  };
  try {
    if ((await nextApplied(300_000)) === undefined)
      throw new Error("the agent never applied the base config");
    await new Promise((r) => setTimeout(r, 2000));
    // Warm-up: the start's transaction came before the agent's nft monitor showed a line.
    await edit(texts.plusOne);
    await edit(texts.base);
    const oneAgent: number[] = [];
    const oneKinds: string[] = [];
    const oneCpu: number[] = [];
    const fullAgent: number[] = [];
    const fullKinds: string[] = [];
    const fullCpu: number[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const add = await edit(texts.plusOne);
      if (add !== undefined) {
        oneAgent.push(add.ms);
        oneKinds.push(add.nft);
        oneCpu.push(add.cpuMs);
      }
      await edit(texts.base);
    }
    for (let t = 0; t < TRIALS; t++) {
      await edit(texts.empty);
      const all = await edit(texts.base);
      if (all !== undefined) {
        fullAgent.push(all.ms);
        fullKinds.push(all.nft);
        fullCpu.push(all.cpuMs);
      }
    }
    const allPartial = (kinds: readonly string[]): boolean =>
      kinds.length > 0 && kinds.every((k) => k === "partial");
    process.stdout.write(
      `${JSON.stringify({
        cases: [
          {
            label: `1 network added to ${NETWORKS.toLocaleString("en-US")}`,
            agentMs: oneAgent,
            toolsMs: allPartial(oneKinds) ? onePartialTools : oneTools,
            toolsPartialMs: onePartialTools,
            toolsFullMs: oneTools,
            agentTransactions: oneKinds,
            agentCpuMs: oneCpu,
          },
          {
            label: `${NETWORKS.toLocaleString("en-US")} networks added to a running agent with none`,
            agentMs: fullAgent,
            toolsMs: allPartial(fullKinds) ? fullPartialTools : fullTools,
            toolsPartialMs: fullPartialTools,
            toolsFullMs: fullTools,
            agentTransactions: fullKinds,
            agentCpuMs: fullCpu,
          },
        ],
        failures: failures.slice(0, 5),
        nodeFlags: NODE_FLAGS,
      })}\n`,
    );
  } finally {
    agent.stop();
  }
}

await main();
