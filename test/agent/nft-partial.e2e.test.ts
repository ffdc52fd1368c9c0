// The warm agent's nft transaction changes only the chains that differ from what its previous,
// verified transaction left (src/render/nft-incremental.ts, src/agent/read-cache.ts): a network
// added or removed runs a partial transaction (the `applied` line says `"nftTransaction":"partial"`)
// that leaves exactly the chains a whole-table one would, the removed network's chains deleted; a
// change to symroute's table by another process makes the next transaction whole again, and it
// repairs the change. The periodic resync is off: every transaction here is the edit's or the repair's.

import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { FirewallSpec } from "../../src/model/firewall.ts";
import { renderNft } from "../../src/render/firewall-scripts.ts";
import { scriptChains } from "../../src/render/nft-incremental.ts";
import { addPeerLink, createNode, e2eUnavailable, run } from "../support/netns.ts";
import { nsGet, startNodeAgent, untilAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9475";

const network = (name: string, third: number): string => `  - name: ${name}
    addresses: [1.2.${third}.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;
const TWO = `firewall: nftables\nnetworks:\n${network("public", 3)}${network("second", 5)}`;
const THREE = `${TWO}${network("third", 6)}`;
const ONE = `firewall: nftables\nnetworks:\n${network("public", 3)}`;

interface LogLine {
  readonly msg?: string;
  readonly networks?: number;
  readonly nftTransaction?: string;
}

test(
  "agent: a network added or removed is a partial nft transaction; another process's change to the table makes it whole again",
  { skip },
  async (t) => {
    const node = createNode(t);
    const inNode = (argv: readonly string[]) => run(["ip", "netns", "exec", node.name, ...argv]);
    const agent = startNodeAgent(t, node, TWO, ["--resync-interval", "0", "--listen", "127.0.0.1:9475"]);
    await untilReady(agent, node.name, URL_BASE);
    const configFile = join(node.stateDir, "agent.yaml");
    /** The config replaced whole (a file written in place may be read half-written, and still validate). */
    const replaceConfig = (text: string): void => {
      writeFileSync(`${configFile}.tmp`, text);
      renameSync(`${configFile}.tmp`, configFile);
    };

    const logLines = (): LogLine[] =>
      agent
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as LogLine);
    const transactions = (): LogLine[] => logLines().filter((l) => l.nftTransaction !== undefined);
    /** Waits for the next reconcile that ran an nft transaction; returns its log line. */
    const nextTransaction = async (what: string, change: () => void): Promise<LogLine> => {
      const seen = transactions().length;
      change();
      await untilAgent(agent, what, () => transactions().length > seen);
      return transactions()[seen] as LogLine;
    };
    /** The chains symroute's tables hold, and those a whole-table transaction of `config` would leave. */
    const chainsHeld = (): string[] => {
      const listed = JSON.parse(inNode(["nft", "-j", "list", "chains"]).stdout) as {
        nftables: { chain?: { family: string; table: string; name: string } }[];
      };
      return listed.nftables
        .flatMap((o) => (o.chain?.table === "symroute" ? [`${o.chain.family} ${o.chain.name}`] : []))
        .sort();
    };
    /** The chains the whole-table transaction of the spec the agent recorded would leave. */
    const chainsWanted = (): string[] => {
      const dir = readdirSync(node.stateDir).find((d) => existsSync(join(node.stateDir, d, "state.json")));
      assert.ok(dir !== undefined);
      const state = JSON.parse(readFileSync(join(node.stateDir, dir, "state.json"), "utf8")) as {
        firewallSpec?: FirewallSpec;
      };
      const script = renderNft(state.firewallSpec);
      return [...(scriptChains(script)?.values() ?? [])].map((c) => `${c.family} ${c.chain}`).sort();
    };
    const inSync = (config: string): boolean => {
      const file = join(node.stateDir, "plan.yaml");
      writeFileSync(file, config);
      return node.symroute(["plan", "-c", file]).code === 0;
    };

    // The start's transaction is whole; nft's monitor printing it proves the monitor listened
    // from its commit on, so the first edit after the start is partial already.
    // (The log line may come after /readyz answers: pino writes asynchronously.)
    await untilAgent(agent, "the start's applied line", () => transactions().length > 0);
    assert.equal(transactions()[0]?.nftTransaction, "full", JSON.stringify(transactions()));
    const warmed = await nextTransaction("the third network applied", () => replaceConfig(THREE));
    assert.deepEqual([warmed.msg, warmed.networks, warmed.nftTransaction], ["applied", 3, "partial"]);
    assert.deepEqual(chainsHeld(), chainsWanted());
    assert.ok(inSync(THREE), "plan finds the node in sync");

    // Two networks removed: their chains are deleted in the same transaction.
    const chainsBefore = chainsHeld();
    const removed = await nextTransaction("two networks removed", () => replaceConfig(ONE));
    assert.deepEqual([removed.msg, removed.networks, removed.nftTransaction], ["applied", 1, "partial"]);
    assert.deepEqual(chainsHeld(), chainsWanted());
    assert.ok(
      chainsHeld().length < chainsBefore.length,
      `${chainsBefore.join(",")} -> ${chainsHeld().join(",")}`,
    );
    assert.ok(inSync(ONE), "plan finds the node in sync");

    // And added again: new chains, and the verdict maps that jump to them.
    const added = await nextTransaction("two networks added", () => replaceConfig(THREE));
    assert.deepEqual([added.msg, added.networks, added.nftTransaction], ["applied", 3, "partial"]);
    assert.deepEqual(chainsHeld(), chainsBefore);
    assert.deepEqual(chainsHeld(), chainsWanted());
    assert.ok(inSync(THREE));

    // Another process adds a rule to symroute's table: the repair replaces the table whole.
    const monitorChains = (): number =>
      Number(
        /^symroute_nft_chains_verified_total\{from="monitor"\} (\d+)$/m.exec(
          nsGet(node.name, `${URL_BASE}/metrics`).body,
        )?.[1] ?? "0",
      );
    const beforeRepair = monitorChains();
    const foreign = await nextTransaction("the foreign rule repaired", () =>
      assert.equal(inNode(["nft", "add", "rule", "inet", "symroute", "pre", "counter"]).code, 0),
    );
    assert.deepEqual([foreign.msg, foreign.nftTransaction], ["drift repaired", "full"]);
    // Its verification took every chain of the inet table from what nft's monitor printed of the
    // whole-table transaction (the netdev guard's declaration, printed without its device, is listed).
    const inetChains = chainsWanted().filter((c) => c.startsWith("inet ")).length;
    assert.ok(monitorChains() - beforeRepair >= inetChains, `${beforeRepair} -> ${monitorChains()}`);
    assert.doesNotMatch(
      inNode(["nft", "list", "chain", "inet", "symroute", "pre"]).stdout,
      /counter packets/,
    );
    assert.ok(inSync(THREE));

    // Verified again: the next edit is partial again; then the guard's table deleted by hand.
    const again = await nextTransaction("the second network applied", () => replaceConfig(TWO));
    assert.equal(again.nftTransaction, "partial");
    const gone = await nextTransaction("the deleted netdev table repaired", () =>
      assert.equal(inNode(["nft", "delete", "table", "netdev", "symroute"]).code, 0),
    );
    assert.deepEqual([gone.msg, gone.nftTransaction], ["drift repaired", "full"]);
    assert.deepEqual(chainsHeld(), chainsWanted());
    assert.ok(inSync(TWO));

    const metrics = nsGet(node.name, `${URL_BASE}/metrics`).body;
    assert.match(metrics, /^symroute_nft_transactions_total\{kind="partial"\} 4$/m);
    // Their verification took the rewritten chains from what nft's monitor printed of them.
    assert.match(metrics, /^symroute_nft_chains_verified_total\{from="monitor"\} [1-9]\d*$/m, metrics);
    assert.doesNotMatch(agent.output(), /reconcile failed|partial-refused/);
  },
);

// nft's monitor prints the elements of a set that is not an interval set in the order the script
// wrote them, `nft list` sorted (measured, nft 1.0.6): the guard's `icmpv6 type { ... }` and the ARP
// probes' `"IF" . ADDR` set. A partial transaction records the chains it rewrote as printed; a cold
// plan compares the kernel's listing with that record. Before the comparison took the elements in
// one order, the next cold plan found "drift" (exit 2) after every such edit, and the agent's resync
// replaced the firewall it had just verified.
const DUAL = (v6Pool: string): string => `  - name: public
    addresses: [1.2.3.0/24, "${v6Pool}"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`;
const ON_EXT1 = `  - name: other
    addresses: [5.6.8.0/24]
    interface: ext1
    gateway: 5.6.8.1
`;

test(
  "agent: after a partial transaction that rewrote a guard and the ARP probes, a cold plan finds the node in sync",
  { skip },
  async (t) => {
    const node = createNode(t, { dualStack: true });
    addPeerLink(node, "ext1");
    assert.equal(run(["ip", "-n", node.name, "link", "set", "ext1", "up"]).code, 0);
    const start = `firewall: nftables\nnetworks:\n${DUAL("2001:db8:100::/64")}`;
    // ext1's network first: its ARP probe comes before ext0's in the script, after it in the listing.
    const edited = `firewall: nftables\nnetworks:\n${ON_EXT1}${DUAL("2001:db8:500::/64")}`;
    const agent = startNodeAgent(t, node, start, ["--resync-interval", "0", "--listen", "127.0.0.1:9475"]);
    await untilReady(agent, node.name, URL_BASE);
    const configFile = join(node.stateDir, "agent.yaml");
    const transactions = (): LogLine[] =>
      agent
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as LogLine)
        .filter((l) => l.nftTransaction !== undefined);
    const planCode = (config: string): number => {
      const file = join(node.stateDir, "plan.yaml");
      writeFileSync(file, config);
      return node.symroute(["plan", "-c", file]).code;
    };
    await untilAgent(agent, "the start's applied line", () => transactions().length > 0);
    assert.equal(planCode(start), 0);

    writeFileSync(`${configFile}.tmp`, edited);
    renameSync(`${configFile}.tmp`, configFile);
    await untilAgent(agent, "the edit applied", () => transactions().length > 1);
    assert.deepEqual(
      [transactions()[1]?.msg, transactions()[1]?.nftTransaction],
      ["applied", "partial"],
      agent.output(),
    );
    // The listing holds the sets sorted, the record as the monitor printed them: the same rules.
    const listed = run(["ip", "netns", "exec", node.name, "nft", "list", "ruleset"]).stdout;
    assert.match(listed, /icmpv6 type \{ nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert \}/);
    assert.match(listed, /\{ "ext0" \. 1\.2\.3\.1, "ext1" \. 5\.6\.8\.1 \}/);
    assert.equal(planCode(edited), 0, "a cold plan after the agent's partial transaction");
    assert.doesNotMatch(agent.output(), /reconcile failed|partial-refused/);
  },
);
