// The built agent's Kubernetes client is a bundle of the few client-node names it uses
// (scripts/bundle-kubernetes-client.ts, run by `make build`): it must not load the whole package, and
// the built source must still list, watch and write status against an API server.

import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { FakeApiServer } from "./support/fake-apiserver.ts";
import { pollUntil } from "./support/agent-process.ts";

const DIST = new URL("../../dist/agent/kubernetes/", import.meta.url);
const NETWORKS = "/apis/symroute.io/v1alpha1/symroutenetworks";

describe("the built Kubernetes client (dist/, make build)", () => {
  const server = new FakeApiServer()
    .collection(NETWORKS, [
      { metadata: { name: "public", generation: 1 }, spec: { addresses: ["1.2.3.0/24"], interface: "ext0" } },
    ])
    .collection("/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools")
    .collection("/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements")
    .collection("/api/v1/nodes", [{ metadata: { name: "node-a" } }]);
  before(async () => {
    if (!existsSync(new URL("client-node.js", DIST)))
      throw new Error("dist/ is missing: run make build first");
    await server.start();
  });
  after(() => server.stop());

  it("is one file that imports nothing from @kubernetes/client-node", () => {
    const text = readFileSync(new URL("client-node.js", DIST), "utf8");
    assert.doesNotMatch(text, /from\s*["']@kubernetes\/client-node["']/);
    assert.ok(text.length > 100_000, "the package code the agent uses is inside");
  });

  it("lists, watches and writes status through the bundle", async () => {
    const { KubeConfig } = (await import(
      new URL("client-node.js", DIST).href
    )) as typeof import("../../src/agent/kubernetes/client-node.ts");
    const { createKubernetesSource } = (await import(
      new URL("source.js", DIST).href
    )) as typeof import("../../src/agent/kubernetes/source.ts");
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: "fake", server: server.url, skipTLSVerify: true }],
      users: [{ name: "agent", token: "t" }],
      contexts: [{ name: "fake", cluster: "fake", user: "agent" }],
      currentContext: "fake",
    });
    const changes: string[] = [];
    const source = createKubernetesSource({
      kubeConfig,
      nodeName: "node-a",
      metallbNamespace: "metallb-system",
      clock: (await import("../../src/agent/clock.ts")).systemClock,
      onChange: (what) => changes.push(what),
      onError: (what, error) => assert.fail(`${what}: ${String(error)}`),
    });
    source.start();
    try {
      const snapshot = await pollUntil("the first list", () => source.snapshot(), 10_000);
      assert.deepEqual(
        snapshot.networks.map((n) => n.metadata.name),
        ["public"],
      );
      server.upsert(NETWORKS, {
        metadata: { name: "second", generation: 1 },
        spec: { addresses: ["5.6.7.0/24"], interface: "ext0" },
      });
      await pollUntil(
        "the watch event",
        () => (source.snapshot()?.networks.length === 2 ? true : undefined),
        10_000,
      );
      await source.writeStatus("public", {
        converged: true,
        reason: "Converged",
        message: "ok",
        lastTransitionTime: "2026-01-01T00:00:00Z",
      });
      assert.equal(
        (server.get(NETWORKS, "public")?.["status"] as { nodes?: Record<string, { reason: string }> })
          ?.nodes?.["node-a"]?.reason,
        "Converged",
      );
    } finally {
      await source.stop();
    }
  });
});
