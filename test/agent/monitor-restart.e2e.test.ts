// A kernel monitor that dies (ip monitor killed by the OOM killer, nft monitor by SIGSEGV: nft
// 1.0.6 dies on a transaction that adds one element to a concatenated interval set and deletes
// another, docs/agent.md) is restarted; whatever changed while it was down came with no event. The
// agent reconciles from a fresh read once it restarted the monitor, so a rule deleted and an nft
// chain flushed in that gap come back with the periodic resync off (before, they stayed until the
// resync, or forever with it off). The same for a monitor that keeps running but lost notifications
// (its socket's buffer overflowed while it was starved: here stopped with SIGSTOP under a burst).

import { strict as assert } from "node:assert";
import { test, type TestContext } from "node:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createNode, e2eUnavailable, type Netns, run } from "../support/netns.ts";
import { startNodeAgent, untilAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();

const CONFIG = `firewall: nftables
networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;

/** The agent's child processes whose command line starts with `argv` (its monitors). */
function childrenRunning(parent: number, argv: readonly string[]): number[] {
  const pids = run(["pgrep", "-P", String(parent)])
    .stdout.split("\n")
    .filter((p) => p !== "");
  return pids.map(Number).filter((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return argv.every((a, i) => cmd[i] === a);
    } catch {
      return false;
    }
  });
}

/** A command in the node's namespace. */
const inNodeOf = (node: Netns) => (argv: readonly string[], input?: string) =>
  run(["ip", "netns", "exec", node.name, ...argv], input === undefined ? {} : { input });

/**
 * The agent on `node` with the periodic resync off and debug logs, listening on `port`: ready, and
 * past its start's follow-up reconcile (which reads the node and would repair a drift by chance).
 */
async function startWatchedAgent(t: TestContext, node: Netns, port: number) {
  const agent = startNodeAgent(t, node, CONFIG, [
    "--resync-interval",
    "0",
    "--listen",
    `127.0.0.1:${port}`,
    "--log-level",
    "debug",
  ]);
  const within = (what: string, check: () => boolean): Promise<void> => untilAgent(agent, what, check);
  await untilReady(agent, node.name, `http://127.0.0.1:${port}`);
  await within("the start's follow-up reconcile", () => /"msg":"in sync/.test(agent.output()));
  const agentPid = agent.child.pid;
  assert.ok(agentPid !== undefined);
  /** The pid of the agent's one monitor started as `argv`. */
  const monitor = (argv: readonly string[]): number => {
    const pids = childrenRunning(agentPid, argv);
    assert.equal(pids.length, 1, `one ${argv.join(" ")} child: ${JSON.stringify(pids)}`);
    return pids[0] ?? 0;
  };
  return { agent, agentPid, within, monitor };
}

/** symroute's fwmark rules on the node (those that look a table up). */
function fwmarkRules(
  inNode: ReturnType<typeof inNodeOf>,
): { priority?: number; fwmark?: string; table?: string }[] {
  return (
    JSON.parse(inNode(["ip", "-j", "rule", "show"]).stdout) as {
      priority?: number;
      fwmark?: string;
      table?: string;
    }[]
  ).filter((r) => r.fwmark !== undefined && r.table !== undefined && r.table !== "main");
}

/** One of symroute's network chains, and whether it holds its rule (it does now). */
function networkChain(inNode: ReturnType<typeof inNodeOf>): { chain: string; chainHasRule: () => boolean } {
  const listing = inNode(["nft", "-t", "list", "table", "inet", "symroute"]).stdout;
  const chain = /^\s*chain (m0x\w+) \{/m.exec(listing)?.[1];
  assert.ok(chain !== undefined, listing);
  const chainHasRule = (): boolean =>
    /comment "/.test(inNode(["nft", "-t", "list", "chain", "inet", "symroute", chain]).stdout);
  assert.ok(chainHasRule());
  return { chain, chainHasRule };
}

test(
  "agent: drift made while a kernel monitor is down (killed) is repaired once the monitor is restarted, resync off",
  { skip },
  async (t) => {
    const node = createNode(t);
    const inNode = inNodeOf(node);
    const { agent, agentPid, within, monitor } = await startWatchedAgent(t, node, 9481);
    const stopped = (which: string): number =>
      agent
        .output()
        .split("\n")
        .filter((l) => l.includes(`"${which} monitor stopped`)).length;

    // ip monitor killed, then one of symroute's rules deleted before the agent restarts it.
    const victim = fwmarkRules(inNode)[0]?.priority;
    assert.ok(victim !== undefined, JSON.stringify(fwmarkRules(inNode)));
    const ipMonitor = monitor(["ip", "-o", "-ts", "monitor"]);
    process.kill(ipMonitor, "SIGKILL");
    assert.equal(inNode(["ip", "rule", "del", "priority", String(victim)]).code, 0);
    await within("the kernel monitor's exit logged", () => stopped("kernel") === 1);
    await within("the rule deleted while ip monitor was down to come back", () =>
      fwmarkRules(inNode).some((r) => r.priority === victim),
    );
    await within(
      "ip monitor running again",
      () => childrenRunning(agentPid, ["ip", "-o", "-ts", "monitor"]).length === 1,
    );

    // nft monitor killed, then one of symroute's chains flushed before the agent restarts it.
    const { chain, chainHasRule } = networkChain(inNode);
    const nftMonitor = monitor(["nft", "monitor"]);
    process.kill(nftMonitor, "SIGKILL");
    assert.equal(inNode(["nft", "flush", "chain", "inet", "symroute", chain]).code, 0);
    await within("the firewall monitor's exit logged", () => stopped("firewall") === 1);
    await within(`chain ${chain}'s rule flushed while nft monitor was down to come back`, chainHasRule);
    assert.doesNotMatch(agent.output(), /reconcile failed/);
  },
);

test(
  "agent: drift whose notification the kernel dropped (a monitor's buffer overflowed) is repaired, resync off",
  { skip },
  async (t) => {
    const node = createNode(t);
    const inNode = inNodeOf(node);
    const { agent, within, monitor } = await startWatchedAgent(t, node, 9482);
    // A pod's interface: its routes in main are events the agent ignores (kernelEventConcerns).
    assert.equal(inNode(["ip", "link", "add", "pod0", "type", "veth", "peer", "name", "pod1"]).code, 0);
    assert.equal(inNode(["ip", "link", "set", "pod0", "up"]).code, 0);
    assert.equal(inNode(["ip", "link", "set", "pod1", "up"]).code, 0);
    const stopped: number[] = [];
    t.after(() => {
      for (const pid of stopped) {
        try {
          process.kill(pid, "SIGCONT");
        } catch {
          // gone already
        }
      }
    });
    /** Stops a monitor, floods its socket with `flood` (in the node), makes `drift`, resumes it. */
    const overflow = (pid: number, flood: readonly string[], drift: () => void): void => {
      stopped.push(pid);
      process.kill(pid, "SIGSTOP");
      try {
        assert.equal(inNode(flood).code, 0);
        drift();
      } finally {
        process.kill(pid, "SIGCONT");
      }
    };

    // 20,000 routes of the pod's: ip monitor's 1 MB buffer holds about 2,500 (measured).
    const routes = join(node.stateDir, "routes.batch");
    writeFileSync(
      routes,
      Array.from(
        { length: 20_000 },
        (_, i) => `route add 10.${100 + Math.floor(i / 250)}.${i % 250}.0/24 dev pod0\n`,
      ).join(""),
    );
    const victim = fwmarkRules(inNode)[0]?.priority;
    assert.ok(victim !== undefined, JSON.stringify(fwmarkRules(inNode)));
    overflow(monitor(["ip", "-o", "-ts", "monitor"]), ["ip", "-batch", routes], () =>
      assert.equal(inNode(["ip", "rule", "del", "priority", String(victim)]).code, 0),
    );
    await within("the rule deleted while ip monitor's buffer was full to come back", () =>
      fwmarkRules(inNode).some((r) => r.priority === victim),
    );

    // 60,000 rules in another program's nft table: more than nft monitor's buffer holds (measured).
    const rules = join(node.stateDir, "rules.nft");
    writeFileSync(
      rules,
      `add table inet other\nadd chain inet other c\n${Array.from(
        { length: 60_000 },
        (_, i) => `add rule inet other c ip daddr 10.${Math.floor(i / 250) % 250}.${i % 250}.1 counter\n`,
      ).join("")}`,
    );
    const { chain, chainHasRule } = networkChain(inNode);
    overflow(monitor(["nft", "monitor"]), ["nft", "-f", rules], () =>
      assert.equal(inNode(["nft", "flush", "chain", "inet", "symroute", chain]).code, 0),
    );
    await within(
      `chain ${chain}'s rule flushed while nft monitor's buffer was full to come back`,
      chainHasRule,
    );
    assert.match(agent.output(), /monitor lost kernel notifications/);
  },
);

test(
  "agent: another program's nft transaction that kills nft monitor (SIGSEGV, nft 1.0.6) and flushes one of symroute's chains: repaired, resync off",
  { skip },
  async (t) => {
    const node = createNode(t);
    const inNode = inNodeOf(node);
    // Another program's set, a concatenation with intervals, made before nft monitor starts (one
    // that saw it made prints the elements as garbage instead of dying, measured).
    const other = [
      "table inet other {",
      "  set s {",
      "    type ifname . ipv4_addr",
      "    flags interval",
      '    elements = { "a" . 10.0.0.0/24 }',
      "  }",
      "}",
      "",
    ].join("\n");
    assert.equal(inNode(["nft", "-f", "-"], other).code, 0);
    const { agent, within } = await startWatchedAgent(t, node, 9483);
    const { chain, chainHasRule } = networkChain(inNode);
    // One element added and another deleted (nft monitor dies printing them), then the flush: it
    // never prints the flush's line.
    const killer = [
      'add element inet other s { "b" . 10.0.1.0/24 }',
      'delete element inet other s { "a" . 10.0.0.0/24 }',
      `flush chain inet symroute ${chain}`,
      "",
    ].join("\n");
    assert.equal(inNode(["nft", "-f", "-"], killer).code, 0);
    await within(`chain ${chain}'s rule flushed with nft monitor's death to come back`, chainHasRule);
    // Whether nft 1.0.6 dies on it depends on its memory (it reads garbage): measured, a monitor
    // started from a shell died (exit 139) in 6 of 6 runs, but not the agent's in 3 of 3, which
    // printed the flush's line; one that saw the set made printed a 330 KB line of garbage for the
    // element instead. Either way the chain comes back: from the line, or from the restart.
    if (!/nft exited \(SIGSEGV\)/.test(agent.output()))
      t.diagnostic("nft monitor did not die by SIGSEGV (an nft other than 1.0.6?)");
  },
);
