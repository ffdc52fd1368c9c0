// The Kubernetes source against a local fake API server (no kube-apiserver on these machines):
// list + watch, addresses that follow the MetalLB pools, per-node status through the status
// subresource, a 410 Gone relist, and an outage during which the last good configuration stays.

import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { startAgent, type Agent } from "../../src/agent/agent.ts";
import { systemClock } from "../../src/agent/clock.ts";
import { createKubernetesSource } from "../../src/agent/kubernetes/source.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import type { ApplyReport, Engine } from "../../src/engine/engine.ts";
import type { Config } from "../../src/config/schema.ts";
import { FakeApiServer } from "./support/fake-apiserver.ts";
import { fakeKubeConfig, kubernetesWiring } from "./support/fake-cluster.ts";
import { pollUntil } from "./support/agent-process.ts";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileClusterCache } from "../../src/agent/kubernetes/cluster-cache.ts";

const NETWORKS = "/apis/symroute.io/v1alpha1/symroutenetworks";
const POOLS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
const L2ADS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements";
const NODES = "/api/v1/nodes";

/** An engine that records the configurations it is asked to converge to. */
function recordingEngine(): Engine & { applied: Config[] } {
  const applied: Config[] = [];
  const report = (config: Config): ApplyReport =>
    ({
      networks: config.networks.map((n) => ({
        name: n.name,
        family: 4,
        pools: n.addresses,
        interface: n.interface,
        case: "c",
        method: "connmark",
        reason: "test engine",
      })),
      changes: [],
      conflicts: [],
      warnings: [],
      warningDetails: [],
      inSync: true,
      firewall: undefined,
      kubeProxyMode: undefined,
      ownedObjects: 0,
      payloads: {},
      applied: false,
    }) as unknown as ApplyReport;
  return {
    applied,
    plan: async (config) => report(config),
    apply: async (config) => {
      applied.push(config);
      return report(config);
    },
    remove: async () => report({ networks: [] } as unknown as Config),
  };
}

const addressesOf = (config: Config | undefined, name: string): readonly string[] | undefined =>
  config?.networks.find((n) => n.name === name)?.addresses;

describe("Kubernetes source against a fake API server", () => {
  const server = new FakeApiServer()
    .collection(NETWORKS, [
      {
        metadata: { name: "public", generation: 1 },
        spec: { pools: { names: ["ext-pool"] }, interface: "ext0", gateway: ["1.2.3.1"] },
      },
      {
        metadata: { name: "elsewhere", generation: 1 },
        spec: {
          nodeSelector: { matchLabels: { zone: "b" } },
          addresses: ["198.51.100.0/24"],
          interface: "eth1",
        },
      },
      {
        metadata: { name: "typo", generation: 2 },
        spec: { pools: { names: ["no-such-pool"] }, interface: "ext0" },
      },
    ])
    .collection(POOLS, [
      { metadata: { name: "ext-pool", namespace: "metallb-system" }, spec: { addresses: ["1.2.3.0/24"] } },
    ])
    .collection(L2ADS, [{ metadata: { name: "all", namespace: "metallb-system" }, spec: {} }])
    .collection(NODES, [
      { metadata: { name: "node-a", labels: { zone: "a" } } },
      { metadata: { name: "node-b", labels: { zone: "b" } } },
    ]);
  const engine = recordingEngine();
  const logLines: string[] = [];
  let agent: Agent;
  const latest = (): Config | undefined => engine.applied.at(-1);

  before(async () => {
    await server.start();
    const kubeConfig = fakeKubeConfig(server.url, "test-token");
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(
          ...chunk
            .toString("utf8")
            .split("\n")
            .filter((l) => l !== ""),
        );
        done();
      },
    });
    agent = await startAgent({
      engine,
      logger: createLogger("debug", sink),
      metrics: createMetrics(),
      kernelEvents: false,
      debounceMs: 20,
      resyncMs: 200,
      lockName: `symroute-agent-test-${process.pid}`,
      kubernetes: kubernetesWiring(kubeConfig, "node-a"),
    });
  });

  after(async () => {
    await agent?.stop();
    await server.stop();
  });

  it("converges to the networks selected for this node, with the pool's addresses", async () => {
    await pollUntil(
      "the first apply",
      () => (addressesOf(latest(), "public") !== undefined ? true : undefined),
      10_000,
    );
    assert.deepEqual(addressesOf(latest(), "public"), ["1.2.3.0/24"]);
    assert.equal(addressesOf(latest(), "elsewhere"), undefined, "not selected for node-a");
    assert.equal(addressesOf(latest(), "typo"), undefined, "refused");
    assert.deepEqual(agent.readiness(), { ready: true, reason: "converged" });
    const auth = server.requests.find((r) => r.path === NETWORKS);
    assert.ok(auth);
  });

  it("writes this node's status on each network: converged, or why not", async () => {
    const status = (name: string) =>
      (
        server.get(NETWORKS, name)?.status as
          | {
              nodes?: Record<
                string,
                { converged: boolean; reason: string; message: string; observedGeneration?: number }
              >;
            }
          | undefined
      )?.nodes?.["node-a"];
    const ok = await pollUntil("status of public", () => status("public"), 10_000);
    assert.equal(ok.converged, true);
    assert.equal(ok.reason, "Converged");
    assert.equal(ok.observedGeneration, 1);
    const bad = await pollUntil("status of typo", () => status("typo"), 10_000);
    assert.equal(bad.converged, false);
    assert.equal(bad.reason, "PoolNotFound");
    assert.match(bad.message, /"no-such-pool"/);
    assert.equal(status("elsewhere"), undefined, "no status where the network does not apply");
    // The standard conditions summarise the nodes (kubectl wait --for=condition=Converged).
    const summary = (name: string) =>
      server.get(NETWORKS, name)?.status as
        | { conditions?: { type: string; status: string; reason: string }[]; convergedNodes?: string }
        | undefined;
    assert.deepEqual(
      summary("public")?.conditions?.map((c) => [c.type, c.status, c.reason]),
      [["Converged", "True", "AllNodesConverged"]],
    );
    assert.equal(summary("public")?.convergedNodes, "1/1");
    assert.deepEqual(
      summary("typo")?.conditions?.map((c) => [c.type, c.status, c.reason]),
      [["Converged", "False", "PoolNotFound"]],
    );
    // Nodes patch their own key only (a merge patch), so they never overwrite each other.
    const patches = server.requests.filter((r) => r.method === "PATCH");
    for (const p of patches) {
      assert.deepEqual(Object.keys((p.body as { status: { nodes: object } }).status.nodes), ["node-a"]);
    }
    // Steady state: no status rewrites while nothing changes.
    const count = patches.length;
    const applies = engine.applied.length;
    await pollUntil(
      "two more resyncs",
      () => (engine.applied.length >= applies + 2 ? true : undefined),
      5_000,
    );
    assert.equal(server.requests.filter((r) => r.method === "PATCH").length, count);
  });

  it("follows the pool: a changed IPAddressPool changes the network's addresses (watch)", async () => {
    server.upsert(POOLS, {
      metadata: { name: "ext-pool", namespace: "metallb-system" },
      spec: { addresses: ["1.2.3.0/25", "1.2.3.200-1.2.3.203"] },
    });
    await pollUntil("the new addresses", () =>
      JSON.stringify(addressesOf(latest(), "public")) === JSON.stringify(["1.2.3.0/25", "1.2.3.200/30"])
        ? true
        : undefined,
    );
  });

  it("follows the node's labels: a network that stops selecting the node loses its status entry", async () => {
    const entry = () =>
      (server.get(NETWORKS, "elsewhere")?.status as { nodes?: Record<string, unknown> } | undefined)?.nodes?.[
        "node-a"
      ];
    server.upsert(NODES, { metadata: { name: "node-a", labels: { zone: "b" } } });
    await pollUntil("elsewhere on node-a", () =>
      addressesOf(latest(), "elsewhere") !== undefined ? true : undefined,
    );
    await pollUntil("its status entry", () => entry());
    server.upsert(NODES, { metadata: { name: "node-a", labels: { zone: "a" } } });
    await pollUntil("elsewhere gone from node-a", () =>
      latest() !== undefined && addressesOf(latest(), "elsewhere") === undefined ? true : undefined,
    );
    await pollUntil("the status entry removed", () => (entry() === undefined ? true : undefined));
  });

  it("relists after 410 Gone and sees what changed meanwhile", async () => {
    const listsBefore = server.listCount(POOLS);
    server.compact();
    server.upsertSilently(POOLS, {
      metadata: { name: "ext-pool", namespace: "metallb-system" },
      spec: { addresses: ["1.2.3.64/26"] },
    });
    await pollUntil("the relisted addresses", () =>
      JSON.stringify(addressesOf(latest(), "public")) === JSON.stringify(["1.2.3.64/26"]) ? true : undefined,
    );
    assert.ok(server.listCount(POOLS) > listsBefore, "the informer listed again");
  });

  it("keeps the last good configuration and routing through an API outage, and catches up after", async () => {
    await server.stop();
    const appliesAtOutage = engine.applied.length;
    await pollUntil(
      "resyncs during the outage",
      () => (engine.applied.length >= appliesAtOutage + 3 ? true : undefined),
      10_000,
    );
    for (const config of engine.applied.slice(appliesAtOutage)) {
      assert.deepEqual(
        addressesOf(config, "public"),
        ["1.2.3.64/26"],
        "the cluster's networks stay in force",
      );
    }
    assert.equal(
      agent.readiness().ready,
      true,
      "routing is converged; the API being away is not the node's fault",
    );
    assert.ok(
      logLines.some((l) => l.includes("Kubernetes API error")),
      "the outage is logged",
    );
    assert.ok(
      (await agent.metrics.registry.getSingleMetricAsString("symroute_source_errors_total")).includes(
        'source="kubernetes"',
      ),
    );

    // Recorded in the server's history while nobody watches: the informer re-watches from its last
    // resourceVersion and receives it.
    server.upsert(POOLS, {
      metadata: { name: "ext-pool", namespace: "metallb-system" },
      spec: { addresses: ["1.2.3.128/26"] },
    });
    await server.start();
    await pollUntil(
      "the change made during the outage",
      () =>
        JSON.stringify(addressesOf(latest(), "public")) === JSON.stringify(["1.2.3.128/26"])
          ? true
          : undefined,
      40_000,
    );
  });

  it("a network removed from the cluster is removed from the node's configuration", async () => {
    server.remove(NETWORKS, "public");
    await pollUntil("public to go", () =>
      latest() !== undefined && addressesOf(latest(), "public") === undefined ? true : undefined,
    );
  });
});

describe("Kubernetes source: API server unreachable at start", () => {
  it("does not converge (which would remove the cluster's networks) until the first list", async () => {
    const server = new FakeApiServer()
      .collection(NETWORKS, [
        {
          metadata: { name: "public" },
          spec: { addresses: ["1.2.3.0/24"], interface: "ext0", gateway: ["1.2.3.1"] },
        },
      ])
      .collection(POOLS)
      .collection(L2ADS)
      .collection(NODES, [{ metadata: { name: "node-a" } }]);
    await server.start();
    const port = server.port;
    await server.stop();
    const kubeConfig = fakeKubeConfig(`http://127.0.0.1:${port}`);
    const engine = recordingEngine();
    const agent = await startAgent({
      engine,
      logger: createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
      metrics: createMetrics(),
      kernelEvents: false,
      debounceMs: 20,
      resyncMs: 100,
      lockName: `symroute-agent-test2-${process.pid}`,
      kubernetes: kubernetesWiring(kubeConfig, "node-a"),
    });
    try {
      await pollUntil(
        "two failed attempts to reach the API",
        async () => {
          const text = await agent.metrics.registry.getSingleMetricAsString("symroute_source_errors_total");
          const errors = Number(/source="kubernetes"} (\d+)/.exec(text)?.[1] ?? "0");
          return errors >= 2 ? true : undefined; // two rounds (the four informers share one)
        },
        10_000,
      );
      assert.equal(engine.applied.length, 0);
      assert.equal(agent.readiness().ready, false);
      assert.match(agent.readiness().reason, /waiting for the first list/);
      await server.start();
      await pollUntil(
        "the first apply",
        () => (addressesOf(engine.applied.at(-1), "public") !== undefined ? true : undefined),
        40_000,
      );
      assert.equal(agent.readiness().ready, true);
    } finally {
      await agent.stop();
      await server.stop();
    }
  });
});

describe("Kubernetes source: cached cluster view", () => {
  it("saves the view that converged, and uses it after a restart while the API is unreachable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "symroute-cache-"));
    const cachePath = join(dir, "kubernetes-cache.json");
    const server = new FakeApiServer()
      .collection(NETWORKS, [
        {
          metadata: { name: "public", generation: 4 },
          spec: { pools: { names: ["p"] }, interface: "ext0", gateway: ["1.2.3.1"] },
        },
      ])
      .collection(POOLS, [
        { metadata: { name: "p", namespace: "metallb-system" }, spec: { addresses: ["1.2.3.0/24"] } },
      ])
      .collection(L2ADS, [{ metadata: { name: "all", namespace: "metallb-system" }, spec: {} }])
      .collection(NODES, [{ metadata: { name: "node-a" } }]);
    await server.start();
    const kubeConfig = fakeKubeConfig(server.url);
    const run = async (engine: Engine, grace: number): Promise<Agent> =>
      startAgent({
        engine,
        logger: createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
        metrics: createMetrics(),
        kernelEvents: false,
        debounceMs: 20,
        resyncMs: 100,
        lockName: `symroute-agent-test3-${process.pid}`,
        kubernetes: kubernetesWiring(kubeConfig, "node-a", {
          cache: fileClusterCache(cachePath),
          cacheGraceMs: grace,
        }),
      });
    try {
      const first = recordingEngine();
      const a = await run(first, 60_000);
      await pollUntil("the cache file", () => (existsSync(cachePath) ? true : undefined), 10_000);
      await a.stop();
      const cached = JSON.parse(readFileSync(cachePath, "utf8")) as {
        snapshot: { networks: { metadata: object }[] };
      };
      assert.deepEqual(
        cached.snapshot.networks[0]?.metadata,
        { name: "public", generation: 4 },
        "slim: no status, no resourceVersion",
      );

      await server.stop();
      const second = recordingEngine();
      const b = await run(second, 200);
      try {
        await pollUntil(
          "an apply from the cache",
          () => (addressesOf(second.applied.at(-1), "public") !== undefined ? true : undefined),
          10_000,
        );
        assert.deepEqual(addressesOf(second.applied.at(-1), "public"), ["1.2.3.0/24"]);
      } finally {
        await b.stop();
      }
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Kubernetes source: conditions written by several nodes", () => {
  it("two nodes writing at once both land, and the conditions summarise both (409 re-reads)", async () => {
    const server = new FakeApiServer()
      .collection(NETWORKS, [
        { metadata: { name: "public", generation: 3 }, spec: { addresses: ["1.2.3.0/24"] } },
      ])
      .collection(POOLS)
      .collection(L2ADS)
      .collection(NODES);
    await server.start();
    const kubeConfig = fakeKubeConfig(server.url);
    const source = (nodeName: string) =>
      createKubernetesSource({
        kubeConfig,
        nodeName,
        metallbNamespace: "metallb-system",
        clock: systemClock,
        onChange: () => {},
        onError: () => {},
      });
    const at = "2026-01-01T00:00:00.000Z";
    try {
      // Several rounds, so that at least one pair of writes interleaves (both read, then both patch).
      for (let round = 0; round < 5; round++) {
        await Promise.all([
          source("node-a").writeStatus("public", {
            converged: true,
            reason: "Converged",
            message: "ok",
            lastTransitionTime: at,
          }),
          source("node-b").writeStatus("public", {
            converged: round % 2 === 0,
            reason: round % 2 === 0 ? "Converged" : "Conflict",
            message: `round ${round}`,
            lastTransitionTime: at,
          }),
        ]);
        const status = server.get(NETWORKS, "public")?.status as {
          nodes: Record<string, { converged: boolean }>;
          conditions: { type: string; status: string; reason: string; observedGeneration: number }[];
          convergedNodes: string;
        };
        assert.deepEqual(Object.keys(status.nodes).sort(), ["node-a", "node-b"]);
        const expected =
          round % 2 === 0 ? ["True", "AllNodesConverged", "2/2"] : ["False", "Conflict", "1/2"];
        const [condition] = status.conditions;
        assert.deepEqual([condition?.status, condition?.reason, status.convergedNodes], expected);
        assert.equal(condition?.observedGeneration, 3);
      }
      assert.ok(server.conflicts > 0, "the writes raced at least once and the loser re-read");
    } finally {
      await server.stop();
    }
  });
});
