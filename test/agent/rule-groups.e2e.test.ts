// The agent across the 64 fwmark rules from which they go in groups (c985987): one running agent
// given 63, 64, 65, 64 and 63 networks in turn moves the rules between one list and the groups, each
// network's mark gets its table after every step, and once converged a reconcile changes nothing
// (the groups' gotos and nops as the agent reads them back are what it wants: no repair loop).

import { strict as assert } from "node:assert";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createNode, e2eUnavailable } from "../support/netns.ts";
import { gatewayNetworks, misrouted } from "../support/rule-groups.ts";
import { metricValue, nsGet, startNodeAgent, untilAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9477";

test(
  "agent: 63, 64, 65, 64, 63 networks move the fwmark rules into groups and back, every mark routed, and then reconciles change nothing",
  { skip },
  async (t) => {
    const node = createNode(t);
    const agent = startNodeAgent(t, node, gatewayNetworks("nftables", 63), [
      "--resync-interval",
      "0",
      "--listen",
      "127.0.0.1:9477",
    ]);
    await untilReady(agent, node.name, URL_BASE);
    const configFile = join(node.stateDir, "agent.yaml");
    const metric = (name: string): number =>
      metricValue(nsGet(node.name, `${URL_BASE}/metrics`).body, name) ?? Number.NaN;
    const rules = (): string => node.exec(["ip", "-4", "rule"]).stdout;
    const grouped = (text: string): boolean =>
      /^1001:\tfrom all fwmark 0\/0xe0 goto 1006 proto 201$/m.test(text);
    let edits = 0;
    for (const count of [64, 65, 64, 63]) {
      // The rules are on the node before the apply's verification and report: wait for its count
      // too (symroute_converged still says 1 from the step before while it runs).
      const appliedBefore = metric("symroute_changes_applied_total");
      writeFileSync(configFile, gatewayNetworks("nftables", count));
      await untilAgent(agent, `${count} networks applied`, () => {
        const text = rules();
        const fwmark = (text.match(/lookup 2\d{4} proto 201$/gm) ?? []).length;
        return (
          fwmark === count &&
          grouped(text) === count >= 64 &&
          metric("symroute_changes_applied_total") > appliedBefore &&
          metric("symroute_converged") === 1
        );
      });
      const text = rules();
      assert.doesNotMatch(text, /unresolved/, text);
      assert.deepEqual(misrouted(node, count), [], text);
      // Converged: a reconcile (a comment added to the file) applies nothing.
      const applied = metric("symroute_changes_applied_total");
      const reconciles = metric("symroute_reconciles_total");
      writeFileSync(configFile, `${gatewayNetworks("nftables", count)}# edit ${++edits}\n`);
      await untilAgent(agent, "a reconcile", () => metric("symroute_reconciles_total") > reconciles);
      assert.equal(metric("symroute_changes_applied_total"), applied, agent.output().slice(-2000));
      assert.equal(rules(), text);
    }
  },
);
