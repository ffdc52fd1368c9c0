// The agent across the 64 fwmark rules from which they go in groups (c985987): one running agent
// given 63, 64, 65, 64 and 63 networks in turn moves the rules between one list and the groups, each
// network's mark gets its table after every step, and once converged a reconcile changes nothing
// (the groups' gotos and nops as the agent reads them back are what it wants: no repair loop).

import { strict as assert } from "node:assert";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createNode, e2eUnavailable, type Netns } from "../support/netns.ts";
import { metricValue, nsGet, startNodeAgent, untilAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9477";

/** `count` networks with their own gateways on ext0 (10.N.3.0/24 via 10.N.3.1), marks 1..count. */
const networks = (count: number): string =>
  `firewall: nftables\nnetworks:\n${Array.from(
    { length: count },
    (_, i) => `  - { name: n${i}, addresses: [10.${i}.3.0/24], interface: ext0, gateway: 10.${i}.3.1 }\n`,
  ).join("")}`;

/** Each network's mark (i + 1) routed by its table, and a packet without a mark by main: one ip -batch. */
function routedByTables(node: Netns, count: number): string[] {
  const lines = Array.from(
    { length: count },
    (_, i) => `route get 198.51.100.7 mark 0x${(i + 1).toString(16)}`,
  );
  const r = node.exec(["ip", "-4", "-batch", "-"], `${lines.join("\n")}\nroute get 198.51.100.7\n`);
  assert.equal(r.code, 0, r.stderr);
  const answers = r.stdout.split("\n").filter((l) => l.startsWith("198.51.100.7"));
  const wrong: string[] = [];
  for (let i = 0; i < count; i++)
    if (!new RegExp(`via 10\\.${i}\\.3\\.1 dev ext0 table ${20000 + i} `).test(answers[i] ?? ""))
      wrong.push(`mark ${i + 1}: ${answers[i]}`);
  if (!/via 192\.168\.1\.1 dev eth0/.test(answers[count] ?? "")) wrong.push(`no mark: ${answers[count]}`);
  return wrong;
}

test(
  "agent: 63, 64, 65, 64, 63 networks move the fwmark rules into groups and back, every mark routed, and then reconciles change nothing",
  { skip },
  async (t) => {
    const node = createNode(t);
    const agent = startNodeAgent(t, node, networks(63), [
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
      writeFileSync(configFile, networks(count));
      await untilAgent(agent, `${count} networks applied`, () => {
        const text = rules();
        const fwmark = (text.match(/lookup 2\d{4} proto 201$/gm) ?? []).length;
        return fwmark === count && grouped(text) === count >= 64 && metric("symroute_converged") === 1;
      });
      const text = rules();
      assert.doesNotMatch(text, /unresolved/, text);
      assert.deepEqual(routedByTables(node, count), [], text);
      // Converged: a reconcile (a comment added to the file) applies nothing.
      const applied = metric("symroute_changes_applied_total");
      const reconciles = metric("symroute_reconciles_total");
      writeFileSync(configFile, `${networks(count)}# edit ${++edits}\n`);
      await untilAgent(agent, "a reconcile", () => metric("symroute_reconciles_total") > reconciles);
      assert.equal(metric("symroute_changes_applied_total"), applied, agent.output().slice(-2000));
      assert.equal(rules(), text);
    }
  },
);
