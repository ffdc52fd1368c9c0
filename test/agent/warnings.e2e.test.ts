// The agent's plan warnings reach the operator: each is logged at warn level once, when it appears
// (not on every reconcile while it lasts; again if it goes and comes back), and
// `symroute_plan_warnings` counts those of the last reconcile. A state file lost under the agent is
// written again without the node from before symroute: the run that writes it warns once, and
// `symroute_state_baseline_unknown` stays 1 from then on (delete and --cleanup-on-exit refuse until
// the operator puts the file back or runs delete --force: docs/agent.md).

import { strict as assert } from "node:assert";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createNode, e2eUnavailable, must, stateFileOf, type Netns } from "../support/netns.ts";
import {
  metricValue,
  nsGet,
  startNodeAgent,
  untilAgent,
  untilReady,
  type AgentProcess,
} from "./support/agent-process.ts";

const skip = e2eUnavailable();
const BASE = "http://127.0.0.1:9473";

// An IPv6 pool without an IPv6 gateway while IPv4 has one: plan warns (docs/config.md, "gateway").
const HALF = `networks:
  - { name: public, addresses: [1.2.3.0/24, "2001:db8:100::/64"], interface: ext0, gateway: 1.2.3.1 }
`;
const BOTH = `networks:
  - { name: public, addresses: [1.2.3.0/24, "2001:db8:100::/64"], interface: ext0, gateway: [1.2.3.1, "2001:db8:100::1"] }
`;
const HALF_WARNING = 'network "public": IPv6 pools 2001:db8:100::/64 have no IPv6 gateway';
const NO_STATE = "symroute's objects are on the node but there is no state file";

interface LogLine {
  level: string;
  msg: string;
  warning?: string;
  kind?: string;
  networks?: string[];
}

const warnings = (agent: AgentProcess, start: string): LogLine[] =>
  agent
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.msg === "plan warning" && l.level === "warn" && (l.warning ?? "").startsWith(start));
const warned = (agent: AgentProcess, start: string): number => warnings(agent, start).length;

const metric = (node: Netns, name: string): number | undefined =>
  metricValue(nsGet(node.name, `${BASE}/metrics`).body, name);

/** A reconcile that repairs drift: symroute's fwmark rule deleted by hand, waited for until it is back. */
async function driftRepaired(agent: AgentProcess, node: Netns): Promise<void> {
  const fwmarkRule = (): boolean => must(["ip", "-n", node.name, "rule"]).includes("fwmark 0x1/0xff");
  assert.ok(fwmarkRule());
  must(["ip", "-n", node.name, "rule", "del", "priority", "1001"]);
  await untilAgent(agent, "the fwmark rule back", fwmarkRule);
}

test(
  "agent: a plan warning is logged at warn once while it lasts, counted in a metric; a lost state file shows as baseline unknown",
  { skip },
  async (t) => {
    const node = createNode(t);
    const agent = startNodeAgent(t, node, HALF, ["--resync-interval", "0"]);
    const configFile = join(node.stateDir, "agent.yaml");
    await untilReady(agent, node.name, BASE);
    await driftRepaired(agent, node);
    await driftRepaired(agent, node);
    assert.equal(metric(node, "symroute_plan_warnings"), 1);
    // By kind too: every kind has its series, 0 when none, so an alert can name the kind.
    assert.equal(metric(node, 'symroute_plan_warnings_by_kind{kind="half-gateway"}'), 1);
    assert.equal(metric(node, 'symroute_plan_warnings_by_kind{kind="mark-move"}'), 0);
    assert.equal(metric(node, "symroute_state_baseline_unknown"), 0);

    // With an IPv6 gateway the warning goes; without it again, it comes back: logged again.
    writeFileSync(configFile, BOTH);
    await untilAgent(agent, "no warning left", () => metric(node, "symroute_plan_warnings") === 0);
    assert.equal(metric(node, 'symroute_plan_warnings_by_kind{kind="half-gateway"}'), 0);
    writeFileSync(configFile, HALF);
    await untilAgent(agent, "the warning again", () => metric(node, "symroute_plan_warnings") === 1);

    const stateFile = stateFileOf(node);
    rmSync(stateFile);
    await driftRepaired(agent, node);
    await untilAgent(agent, "the state file written again", () => existsSync(stateFile));
    await untilAgent(agent, "baseline unknown", () => metric(node, "symroute_state_baseline_unknown") === 1);
    await driftRepaired(agent, node);
    assert.equal(metric(node, "symroute_state_baseline_unknown"), 1, "it stays");
    await driftRepaired(agent, node);

    // Every line is out once the agent has exited: the half-gateway warning was in the plan of
    // every reconcile but two, logged when it appeared (twice); the lost state's once.
    agent.child.kill("SIGTERM");
    assert.equal(await agent.exited(15_000), 0, agent.output());
    assert.equal(warned(agent, HALF_WARNING), 2, agent.output());
    assert.equal(warned(agent, NO_STATE), 1, agent.output());
    // Each line carries the warning's kind and the networks it concerns (warningDetails).
    const [half] = warnings(agent, HALF_WARNING);
    assert.deepEqual([half?.kind, half?.networks], ["half-gateway", ["public"]]);
    const [noState] = warnings(agent, NO_STATE);
    assert.deepEqual([noState?.kind, noState?.networks], ["baseline-unknown", []]);
  },
);
