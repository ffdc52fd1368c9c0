// The agent serves a reconcile from what it last read when its kernel monitors show nothing changed
// since (src/agent/read-cache.ts), and still repairs what another process changes between two
// reconciles: a rule deleted, one of its nft chains flushed, a route of its tables replaced. The
// periodic resync is off: each repair comes from the change's own event invalidating the cache.
// Before each change, a reconcile served from the cache is awaited, so that the change meets a warm
// cache (a cache that missed the event would plan from the node as it was, and repair nothing).
// The changes are not checked in between: the agent may have repaired them already.

import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runTool } from "../../src/adapters/exec.ts";
import { createLinuxKernel } from "../../src/adapters/kernel.ts";
import { createNode, e2eUnavailable, run } from "../support/netns.ts";
import { nsGet, startNodeAgent, untilAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9474";

const CONFIG = `firewall: nftables
networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
  - name: second
    addresses: [1.2.5.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;

interface RuleJson {
  readonly priority?: number;
  readonly table?: string;
  readonly fwmark?: string;
}

test(
  "agent: reconciles served from its read cache still repair a rule deleted, an nft chain flushed and a route replaced by hand",
  { skip },
  async (t) => {
    const node = createNode(t);
    const inNode = (argv: readonly string[]) => run(["ip", "netns", "exec", node.name, ...argv]);
    const agent = startNodeAgent(t, node, CONFIG, ["--resync-interval", "0", "--listen", "127.0.0.1:9474"]);
    const within = (what: string, check: () => boolean): Promise<void> => untilAgent(agent, what, check);
    await untilReady(agent, node.name, URL_BASE);

    const reads = (from: string): number => {
      const line = nsGet(node.name, `${URL_BASE}/metrics`)
        .body.split("\n")
        .find((l) => l.startsWith(`symroute_node_reads_total{from="${from}"}`));
      return line === undefined ? 0 : Number(line.split(" ").pop());
    };
    const cacheReads = (): number => reads("cache");
    const configFile = join(node.stateDir, "agent.yaml");
    let edits = 0;
    /** Touches the config (a comment: the same networks) until a reconcile was served from the cache. */
    const warm = async (): Promise<void> => {
      const before = cacheReads();
      await within("a reconcile served from the read cache", () => {
        writeFileSync(configFile, `${CONFIG}# edit ${++edits}\n`);
        // Routing and firewall, both from the cache.
        return cacheReads() >= before + 2;
      });
    };

    const fwmarkRules = (): RuleJson[] =>
      (JSON.parse(inNode(["ip", "-j", "rule", "show"]).stdout) as RuleJson[]).filter(
        (r) => r.fwmark !== undefined && r.table !== undefined && r.table !== "main",
      );
    const victim = fwmarkRules()[0];
    assert.ok(victim?.priority !== undefined, JSON.stringify(fwmarkRules()));
    const hasRule = (): boolean => fwmarkRules().some((r) => r.priority === victim.priority);

    await warm();
    assert.equal(inNode(["ip", "rule", "del", "priority", String(victim.priority)]).code, 0);
    await within("the deleted rule to come back", hasRule);

    const listing = inNode(["nft", "-t", "list", "table", "inet", "symroute"]).stdout;
    const chain = /^\s*chain (m0x\w+) \{/m.exec(listing)?.[1];
    assert.ok(chain !== undefined, listing);
    const chainHasRule = (): boolean =>
      /comment "/.test(inNode(["nft", "-t", "list", "chain", "inet", "symroute", chain]).stdout);
    assert.ok(chainHasRule());
    await warm();
    assert.equal(inNode(["nft", "flush", "chain", "inet", "symroute", chain]).code, 0);
    await within(`chain ${chain}'s rule to come back`, chainHasRule);

    const table = victim.table ?? "";
    const defaultRoute = (): string =>
      inNode(["ip", "route", "show", "default", "table", table]).stdout.trim();
    assert.match(defaultRoute(), /via 1\.2\.3\.1/);
    await warm();
    // Still symroute's (its protocol, 201 by default): drift, not a foreign object in the way.
    assert.equal(
      inNode(["ip", "route", "replace", "unreachable", "default", "table", table, "proto", "201"]).code,
      0,
    );
    await within(`table ${table}'s default route to come back`, () => /via 1\.2\.3\.1/.test(defaultRoute()));

    // A network added: verification lists only the chains the transaction changed, and puts the
    // rest together from the listing after the previous one. What it recorded is the kernel's listing.
    const third = `${CONFIG}  - name: third
    addresses: [1.2.6.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;
    await warm();
    writeFileSync(configFile, third);
    const kernel = createLinuxKernel({
      run: (file, args, options) => runTool("ip", ["netns", "exec", node.name, file, ...args], options),
    });
    const listed = async (): Promise<string[]> =>
      [...((await kernel.readFirewall(["nftables"]))[0]?.contents ?? [])].sort();
    const recorded = (): string[] | undefined => {
      const dir = readdirSync(node.stateDir).find((d) => existsSync(join(node.stateDir, d, "state.json")));
      if (dir === undefined) return undefined;
      const state = JSON.parse(readFileSync(join(node.stateDir, dir, "state.json"), "utf8")) as {
        firewallContents?: { nftables?: string[] };
      };
      return state.firewallContents?.nftables;
    };
    await within("the third network's classify chain", () =>
      (recorded() ?? []).some((c) => c.includes('"third ')),
    );
    assert.deepEqual(recorded(), await listed());
    assert.ok(reads("chains") >= 1, "verification listed only the changed chains");
    // And read only the route tables the agent's batch named (with main's and local's), the others
    // taken from the read before: what it recorded of routing is what the kernel holds.
    assert.ok(reads("tables") >= 1, "verification read only the route tables the write named");
    // No verification failed on the way (a wrong listing would be rolled back, then applied again).
    assert.doesNotMatch(agent.output(), /reconcile failed/);
  },
);

test(
  "agent: the reconcile that its own apply's kernel events trigger runs no apply; another process's change right after the apply is still repaired",
  { skip },
  async (t) => {
    const node = createNode(t);
    const inNode = (argv: readonly string[]) => run(["ip", "netns", "exec", node.name, ...argv]);
    const base = "http://127.0.0.1:9476";
    const agent = startNodeAgent(t, node, CONFIG, [
      "--resync-interval",
      "0",
      "--listen",
      "127.0.0.1:9476",
      "--log-level",
      "debug",
    ]);
    const within = (what: string, check: () => boolean): Promise<void> => untilAgent(agent, what, check);
    await untilReady(agent, node.name, base);
    const configFile = join(node.stateDir, "agent.yaml");
    const logLines = (): { msg?: string; networks?: number }[] =>
      agent
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { msg?: string; networks?: number });
    const count = (msg: string): number => logLines().filter((l) => l.msg === msg).length;
    const SKIPPED = "in sync: nothing changed since the last verified reconcile";
    const withNetwork = (third: number): string =>
      `${CONFIG}  - name: n${third}\n    addresses: [1.2.${third}.0/24]\n    interface: ext0\n    gateway: 1.2.3.1\n`;
    /** The config replaced whole; resolves once its `applied` line came. */
    let edits = 0;
    const edit = async (text: string): Promise<void> => {
      const applied = count("applied");
      writeFileSync(`${configFile}.tmp`, text);
      renameSync(`${configFile}.tmp`, configFile);
      edits++;
      await within(`edit ${edits} applied`, () => count("applied") > applied);
    };

    // Networks added and removed until a follow-up of the agent's own events was skipped (one
    // whose routing lines ip stamped after the verification's read began is read and run instead).
    /** The reconciles logged after the last `applied` line whose only reason is the kernel's. */
    const followUps = (): string[] => {
      const lines = logLines() as { msg?: string; reasons?: string[] }[];
      const last = lines.map((l) => l.msg).lastIndexOf("applied");
      return lines
        .slice(last + 1)
        .filter((l) => l.reasons?.length === 1 && l.reasons[0] === "kernel")
        .map((l) => l.msg ?? "");
    };
    for (let i = 0; count(SKIPPED) === 0; i++) {
      assert.ok(i < 10, agent.output());
      await edit(withNetwork(6 + (i % 2)));
      await within(`edit ${edits}'s follow-up reconcile`, () => followUps().length > 0);
    }

    // Right after an apply (its own events still coming or just handled), another process deletes
    // one of symroute's rules and flushes one of its chains: both come back.
    const fwmarkRules = (): { priority?: number; fwmark?: string; table?: string }[] =>
      (
        JSON.parse(inNode(["ip", "-j", "rule", "show"]).stdout) as {
          priority?: number;
          fwmark?: string;
          table?: string;
        }[]
      ).filter((r) => r.fwmark !== undefined && r.table !== undefined && r.table !== "main");
    const victim = fwmarkRules()[0]?.priority;
    assert.ok(victim !== undefined);
    const listing = inNode(["nft", "-t", "list", "table", "inet", "symroute"]).stdout;
    const chain = /^\s*chain (m0x\w+) \{/m.exec(listing)?.[1];
    assert.ok(chain !== undefined, listing);
    const chainHasRule = (): boolean =>
      /comment "/.test(inNode(["nft", "-t", "list", "chain", "inet", "symroute", chain]).stdout);
    await edit(withNetwork(8));
    assert.equal(inNode(["ip", "rule", "del", "priority", String(victim)]).code, 0);
    assert.equal(inNode(["nft", "flush", "chain", "inet", "symroute", chain]).code, 0);
    await within("the deleted rule and the flushed chain to come back", () => {
      return fwmarkRules().some((r) => r.priority === victim) && chainHasRule();
    });
    const plan = join(node.stateDir, "plan.yaml");
    const planInSync = (text: string): boolean => {
      writeFileSync(plan, text);
      return node.symroute(["plan", "-c", plan]).code === 0;
    };
    assert.ok(planInSync(withNetwork(8)), "plan finds the node in sync");

    // A network added: its partial transaction rewrites `restore` (its verdict map gains the new
    // mark). The moment the transaction shows in the kernel, another process flushes `restore`,
    // racing the verification (which takes the chain from nft's monitor when it printed the
    // transaction): whatever the order, the flush is seen and repaired.
    const restore = (): string =>
      inNode(["nft", "-t", "list", "chain", "inet", "symroute", "restore"]).stdout;
    const jumps = (): number => (restore().match(/goto m0x/g) ?? []).length;
    const jumpsBefore = jumps();
    const fourth = `${withNetwork(8)}  - name: n9\n    addresses: [1.2.9.0/24]\n    interface: ext0\n    gateway: 1.2.3.1\n`;
    writeFileSync(`${configFile}.tmp`, fourth);
    renameSync(`${configFile}.tmp`, configFile);
    await within("the new network's transaction", () => jumps() > jumpsBefore);
    assert.equal(inNode(["nft", "flush", "chain", "inet", "symroute", "restore"]).code, 0);
    await within(
      "restore filled again and the node in sync",
      () => jumps() > jumpsBefore && planInSync(fourth),
    );
  },
);
