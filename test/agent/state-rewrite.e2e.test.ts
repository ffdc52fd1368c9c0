// The state file lost while the agent runs (README, "State per network namespace"): the agent's next
// reconcile finds the node in sync and writes the file again from what it verified, so that a later
// delete finds what symroute owns and the tables and marks stay where they are. The sysctl values
// from before symroute are known only from the lost file: the rewritten one says so
// (`baselineUnknown`), and a delete then refuses as without a state file (exit 1, nothing removed),
// or with --force removes the objects and leaves those sysctls as they are, saying so.

import { strict as assert } from "node:assert";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { test } from "node:test";
import { createNode, e2eUnavailable, must, PUBLIC_NETWORK, stateFileOf } from "../support/netns.ts";
import { startNodeAgent, untilAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const BASE = "http://127.0.0.1:9482";

interface State {
  allocations: Record<string, unknown>;
  previousSysctls: Record<string, string>;
  firewallContents?: Record<string, string[]>;
  baselineUnknown?: string[];
}

test(
  "a state file deleted under the agent is written again, baseline unknown: delete refuses unless --force",
  { skip },
  async (t) => {
    const node = createNode(t);
    const agent = startNodeAgent(t, node, PUBLIC_NETWORK, [
      "--resync-interval",
      "5m",
      "--listen",
      "127.0.0.1:9482",
    ]);
    await untilReady(agent, node.name, BASE);
    const stateFile = stateFileOf(node);
    const read = (): State => JSON.parse(readFileSync(stateFile, "utf8")) as State;
    const before = read();
    assert.equal(before.previousSysctls["net/ipv4/conf/all/rp_filter"], "1", JSON.stringify(before));
    const rpFilterAll = (): string =>
      must(["ip", "netns", "exec", node.name, "sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).trim();
    assert.equal(rpFilterAll(), "0");
    assert.equal(before.baselineUnknown, undefined, "the first apply saw the node before symroute");

    rmSync(stateFile);
    // Any reconcile will do: a foreign rule outside symroute's band is an event and changes no plan.
    must([
      "ip",
      "-n",
      node.name,
      "rule",
      "add",
      "priority",
      "30000",
      "from",
      "192.0.2.0/24",
      "lookup",
      "main",
    ]);
    await untilAgent(agent, "the state file written again", () => existsSync(stateFile));
    const after = read();
    assert.deepEqual(after.allocations, before.allocations, "the table and mark stay where they are");
    assert.deepEqual(
      after.firewallContents,
      before.firewallContents,
      "the firewall's record as the node holds it",
    );
    assert.deepEqual(after.previousSysctls, {}, "the values from before symroute went with the lost file");
    assert.deepEqual(after.baselineUnknown, ["previousSysctls"], "and the new record says so");

    agent.child.kill("SIGTERM");
    assert.equal(await agent.exited(15_000), 0, agent.output());
    const rules = (): string => must(["ip", "-n", node.name, "rule"]);
    const during = node.dump();
    // delete refuses as without a state file: it cannot put conf.all's rp_filter back.
    const refused = node.symroute(["delete"]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /was written on a node symroute had already changed/);
    assert.match(refused.stderr, /net\.ipv4\.conf\.all\.rp_filter=0/);
    assert.match(refused.stderr, /--force/);
    assert.equal(node.dump(), during, "a refused delete changes nothing");
    assert.ok(existsSync(stateFile), "and keeps the state file");
    // --force: every object goes by the rewritten record; the unknown sysctls stay, named.
    const forced = node.symroute(["delete", "--force"]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.match(forced.stdout, /not restored: .*net\.ipv4\.conf\.all\.rp_filter=0/);
    assert.doesNotMatch(rules(), /lookup 20000/);
    assert.doesNotMatch(must(["ip", "netns", "exec", node.name, "nft", "list", "ruleset"]), /symroute/);
    assert.equal(rpFilterAll(), "0", "conf.all's rp_filter from before symroute is unknown: left as it is");
    assert.ok(!existsSync(stateFile));
  },
);
