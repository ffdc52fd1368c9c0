// Plan's warnings about a network show in its Kubernetes status entry for the node (status-writer):
// still converged, the warning first in the message, so that `kubectl get srn` shows it; a network
// the warning does not concern keeps its message as it was, even when the warning names it. A
// warning about the node as a whole (no networks) shows on every network's entry.

import { strict as assert } from "node:assert";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { ApplyReport } from "../../src/engine/engine.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { writeNodeStatuses } from "../../src/agent/status-writer.ts";
import type { NodeStatus } from "../../src/agent/kubernetes/resources.ts";
import type { ClusterSnapshot, KubernetesSource } from "../../src/agent/kubernetes/source.ts";
import { createEngine } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom } from "../support/config.ts";

/** The status each network gets from this report, by network (`shown`: what its object shows now). */
async function statusesFor(
  report: ApplyReport,
  names: readonly string[],
  shown: ReadonlyMap<string, NodeStatus | undefined> = new Map(),
): Promise<Map<string, NodeStatus | undefined>> {
  const written = new Map<string, NodeStatus | undefined>();
  const source = {
    writeStatus: async (network: string, status: NodeStatus | undefined) => void written.set(network, status),
  } as unknown as KubernetesSource;
  const snapshot = {
    networks: names.map((name) => ({
      metadata: { name, generation: 1 },
      status: { nodes: shown.has(name) ? { "node-a": shown.get(name) } : {} },
    })),
  } as unknown as ClusterSnapshot;
  await writeNodeStatuses(
    {
      cluster: { source, snapshot, nodeName: "node-a" },
      verdicts: names.map((network) => ({ network, state: "selected", entry: {} })),
      refused: new Map(),
      report,
      failure: undefined,
    },
    createMetrics(),
    createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
  );
  return written;
}

/** Networks a and b, each with its own gateway on ext0. */
const TWO_NETWORKS = `networks:
  - { name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: b, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1 }
`;

/** Two networks applied, then the state file lost: an engine whose store has no record of them. */
async function stateLost() {
  const config = configFrom(TWO_NETWORKS);
  const kernel = new FakeKernel(articleNode());
  await createEngine({ kernel, store: new MemoryStore() }).apply(config);
  return { config, engine: createEngine({ kernel, store: new MemoryStore() }) };
}

test("a plan warning naming a network is in that network's status message, first", async () => {
  const decision = (name: string) => ({
    name,
    family: 4 as const,
    pools: [],
    interface: "ext0",
    case: "route" as const,
    method: "route" as const,
    reason: "on-link",
  });
  const warning =
    'network "public": IPv6 pools 2001:db8:100::/64 have no IPv6 gateway while IPv4 has 1.2.3.1: ...';
  const report = {
    networks: [decision("public"), decision("other")],
    conflicts: [],
    warnings: [warning],
    warningDetails: [{ kind: "half-gateway", message: warning, networks: ["public"] }],
  } as unknown as ApplyReport;
  const written = await statusesFor(report, ["public", "other"]);
  assert.equal(written.get("public")?.converged, true);
  assert.equal(written.get("public")?.reason, "Converged");
  assert.equal(written.get("public")?.message, `warning: ${warning}; IPv4 route: on-link`);
  assert.equal(written.get("other")?.message, "IPv4 route: on-link");
});

test("a warning about one network that names another shows on the first only", async () => {
  // A mask that moves c's mark onto b's value: c's warning says b's table takes c's open replies.
  const networks = (mask: string) =>
    configFrom(`marks: { mask: ${mask} }
networks:
  - { name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: b, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1 }
  - { name: c, addresses: [1.2.5.0/24], interface: ext0, gateway: 1.2.5.1 }
`);
  const engine = createEngine({ kernel: new FakeKernel(articleNode()), store: new MemoryStore() });
  await engine.apply(networks("0xff"));
  const plan = await engine.plan(networks("0xfe"));
  const aboutC = plan.warningDetails.find((w) => w.kind === "mark-move" && w.networks.includes("c"));
  assert.ok(aboutC !== undefined, JSON.stringify(plan.warningDetails));
  assert.deepEqual(aboutC.networks, ["c"]);
  assert.match(aboutC.message, /network "b"'s table/);
  assert.deepEqual(
    plan.warnings,
    plan.warningDetails.map((w) => w.message),
    "warnings[] are the details' messages, in order",
  );
  const written = await statusesFor({ ...plan, applied: false }, ["a", "b", "c"]);
  assert.ok(written.get("c")?.message.startsWith(`warning: ${aboutC.message}`), written.get("c")?.message);
  assert.doesNotMatch(written.get("b")?.message ?? "", /warning/);
});

test("a warning about the whole node (a state file written again without the node from before symroute) shows on every network's entry", async () => {
  // The state file lost: the next apply writes one that does not know the node from before symroute.
  const { config, engine } = await stateLost();
  const report = await engine.apply(config);
  const baseline = report.warningDetails.find((w) => w.kind === "baseline-unknown");
  assert.ok(baseline !== undefined, JSON.stringify(report.warningDetails));
  assert.deepEqual(baseline.networks, []);
  const written = await statusesFor(report, ["a", "b"]);
  for (const network of ["a", "b"]) {
    assert.equal(written.get(network)?.reason, "Converged", network);
    assert.ok(
      written.get(network)?.message.startsWith(`warning: ${baseline.message}`),
      `${network}: ${written.get(network)?.message}`,
    );
  }
});

test("whole-node warnings on every entry: the first three and how many more, and written once while they last", async () => {
  const config = configFrom(TWO_NETWORKS);
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  await engine.apply(config);
  // Another tool's six rules in symroute's band, after its own: a warning each, about the node.
  const foreign = [1, 2, 3, 4, 5, 6].map((n) => ({
    family: 4 as const,
    priority: 1500 + n,
    to: `9.9.${n}.0/24`,
    action: "lookup" as const,
    table: 100 + n,
    protocol: 4,
  }));
  kernel.state = { ...kernel.state, rules: [...kernel.state.rules, ...foreign] };
  const report = await engine.apply(config);
  const inBand = report.warningDetails.filter((w) => w.kind === "foreign-rule-in-band");
  assert.equal(inBand.length, 6, JSON.stringify(report.warningDetails));
  const written = await statusesFor(report, ["a", "b"]);
  for (const network of ["a", "b"]) {
    const message = written.get(network)?.message ?? "";
    assert.equal(message.match(/warning: /g)?.length, 3, message);
    assert.ok(message.startsWith(`warning: ${inBand[0]?.message}`), message);
    assert.match(message, /; and 3 more warnings; IPv4 connmark: /, message);
  }
  // The next reconcile's report the same: the entries already say it, nothing is written.
  const again = await engine.apply(config);
  const rewritten = await statusesFor(again, ["a", "b"], written);
  assert.deepEqual([...rewritten.keys()], []);
});

test("a state file without the node from before symroute shows on every entry while it lasts, not only in the apply that wrote it", async () => {
  // The state file lost: the apply after it warns once; the next ones have no warning, but the
  // record still does not know the node from before symroute, and delete refuses without --force.
  const { config, engine } = await stateLost();
  const first = await engine.apply(config);
  const written = await statusesFor(first, ["a", "b"]);
  const later = await engine.apply(config);
  assert.equal(later.warningDetails.filter((w) => w.kind === "baseline-unknown").length, 0);
  assert.ok((later.state?.baselineUnknown ?? []).length > 0, JSON.stringify(later.state));
  const rewritten = await statusesFor(later, ["a", "b"], written);
  for (const network of ["a", "b"]) {
    const message = rewritten.get(network)?.message ?? written.get(network)?.message ?? "";
    assert.match(message, /^warning: the state file does not know the node from before symroute \(/, message);
    assert.match(message, /delete refuses unless --force/, message);
    assert.equal(message.match(/warning: /g)?.length, 1, message);
  }
});
