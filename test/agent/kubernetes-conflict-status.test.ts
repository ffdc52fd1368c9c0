// A conflict on the node shows on the SymrouteNetwork (issue 17 item 2): the agent, fed by the fake
// API server and converging a fake kernel through the real engine, writes its node's entry as
// `converged: false, reason: Conflict` naming the foreign objects (three, and how many more), and
// the Converged condition turns False with that reason; once the operator removes them, both go
// back to converged. Only the network the objects are in the way of shows them: another network
// on the same node stays converged.

import { strict as assert } from "node:assert";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { startAgent, type Agent } from "../../src/agent/agent.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { createEngine } from "../../src/engine/engine.ts";
import type { Route } from "../../src/model/state.ts";
import { articleNode, FakeKernel } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { pollUntil } from "./support/agent-process.ts";
import { FakeApiServer } from "./support/fake-apiserver.ts";
import { fakeKubeConfig, kubernetesWiring } from "./support/fake-cluster.ts";

const NETWORKS = "/apis/symroute.io/v1alpha1/symroutenetworks";
const POOLS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
const L2ADS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements";
const NODES = "/api/v1/nodes";

interface Status {
  nodes?: Record<string, { converged: boolean; reason: string; message: string }>;
  conditions?: { type: string; status: string; reason: string; message: string }[];
  convergedNodes?: string;
}

describe("Kubernetes status: a conflict with a foreign object", () => {
  const server = new FakeApiServer()
    .collection(NETWORKS, [
      {
        metadata: { name: "public", generation: 1 },
        spec: { addresses: ["1.2.3.0/24"], interface: "ext0", gateway: ["1.2.3.1"] },
      },
      {
        metadata: { name: "private", generation: 1 },
        spec: { addresses: ["10.1.3.0/24"], interface: "ext0", gateway: ["10.1.3.1"] },
      },
    ])
    .collection(POOLS, [])
    .collection(L2ADS, [{ metadata: { name: "all", namespace: "metallb-system" }, spec: {} }])
    .collection(NODES, [{ metadata: { name: "node-a", labels: {} } }]);
  const kernel = new FakeKernel(articleNode());
  let agent: Agent;
  const metrics = createMetrics();
  const reconciles = async (): Promise<number> =>
    (await metrics.reconciles.get()).values.reduce((sum, v) => sum + v.value, 0);
  /** Resolves once a whole reconcile (statuses written) ran after this call. */
  const nextWholeReconcile = async (): Promise<void> => {
    const now = await reconciles();
    const target = now + 2;
    await pollUntil(
      "a whole reconcile more",
      async () => ((await reconciles()) >= target ? true : undefined),
      10_000,
    );
  };
  const status = (network = "public"): Status | undefined =>
    server.get(NETWORKS, network)?.status as Status | undefined;

  before(async () => {
    await server.start();
    agent = await startAgent({
      engine: createEngine({ kernel, store: new MemoryStore() }),
      logger: createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
      metrics,
      kernelEvents: false,
      debounceMs: 20,
      resyncMs: 100,
      lockName: `symroute-agent-conflict-${process.pid}`,
      kubernetes: kubernetesWiring(fakeKubeConfig(server.url, "test-token"), "node-a"),
    });
  });

  after(async () => {
    await agent?.stop();
    await server.stop();
  });

  it("Conflict on the node's entry and the Converged condition, and back once it is gone", async () => {
    const converged = await pollUntil(
      "the first converged status",
      () =>
        status()?.nodes?.["node-a"]?.converged === true && status("private")?.nodes?.["node-a"]?.converged
          ? status()
          : undefined,
      10_000,
    );
    assert.deepEqual(
      converged.conditions?.map((c) => [c.type, c.status, c.reason]),
      [["Converged", "True", "AllNodesConverged"]],
    );
    const table = kernel.state.routes.find(
      (r) => r.family === 4 && r.dst === "1.2.3.0/24" && r.table !== 254 && r.table !== 255,
    )?.table;
    assert.ok(table !== undefined, "symroute made a table of its own");

    // An operator's routes in public's table: conflicts, reported, never worked around.
    const foreign: Route[] = [9, 10, 11, 12].map((n) => ({
      family: 4,
      table,
      type: "unicast",
      dst: `${n}.9.9.0/24`,
      dev: "ext0",
      protocol: 4,
      scope: 253,
    }));
    kernel.state = { ...kernel.state, routes: [...kernel.state.routes, ...foreign] };
    const conflicted = await pollUntil(
      "the Conflict status",
      () => (status()?.nodes?.["node-a"]?.reason === "Conflict" ? status() : undefined),
      10_000,
    );
    const entry = conflicted.nodes?.["node-a"];
    assert.equal(entry?.converged, false);
    assert.match(entry?.message ?? "", new RegExp(`9\\.9\\.9\\.0/24.*table ${table}`));
    assert.equal(entry?.message.match(/in table \d+, which symroute allocated/g)?.length, 3);
    assert.match(entry?.message ?? "", /; and 1 more conflict$/);
    // The other network's entry says nothing of them (after a whole reconcile more, its statuses
    // written).
    await nextWholeReconcile();
    const other = status("private")?.nodes?.["node-a"];
    assert.equal(other?.converged, true, JSON.stringify(other));
    assert.equal(other?.reason, "Converged");
    const condition = conflicted.conditions?.find((c) => c.type === "Converged");
    assert.equal(condition?.status, "False");
    assert.equal(condition?.reason, "Conflict");
    assert.match(condition?.message ?? "", /1 of 1 node not converged; node-a: Conflict: .*9\.9\.9\.0\/24/);
    assert.equal(conflicted.convergedNodes, "0/1");
    assert.ok(
      foreign.every((f) => kernel.state.routes.includes(f)),
      "the foreign route is left alone",
    );
    assert.match(agent.readiness().reason, /conflict/);

    kernel.state = { ...kernel.state, routes: kernel.state.routes.filter((r) => !foreign.includes(r)) };
    const back = await pollUntil(
      "converged again",
      () => (status()?.nodes?.["node-a"]?.converged === true ? status() : undefined),
      10_000,
    );
    assert.equal(back.conditions?.find((c) => c.type === "Converged")?.status, "True");
  });
});
