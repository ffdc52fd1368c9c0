// The one-shot read of `plan --kubernetes` and `doctor --kubernetes` (src/cli/cluster-config.ts)
// against the fake API server and the cluster fixtures: for every node, it reads the same cluster
// view the agent's informers hold (readClusterSnapshot) and makes the very configuration the agent's
// ConfigSource converges that node to, the config file's global settings included; each
// SymrouteNetwork's verdict is the reason the agent writes in its status.

import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { systemClock } from "../../src/agent/clock.ts";
import { ConfigSource } from "../../src/agent/config-source.ts";
import { createKubernetesSource, readClusterSnapshot } from "../../src/agent/kubernetes/source.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { readClusterConfig } from "../../src/cli/cluster-config.ts";
import { FakeApiServer } from "./support/fake-apiserver.ts";
import { fakeKubeConfig, kubernetesWiring } from "./support/fake-cluster.ts";
import { pollUntil } from "./support/agent-process.ts";

const NETWORKS = "/apis/symroute.io/v1alpha1/symroutenetworks";
const POOLS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
const L2ADS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements";
const NODES = "/api/v1/nodes";

type Obj = Parameters<FakeApiServer["collection"]>[1] extends (infer O)[] | undefined ? O : never;
const fixture = <T>(name: string): T =>
  parse(readFileSync(new URL(`./fixtures/cluster/${name}`, import.meta.url), "utf8")) as T;
const inMetallb = (objects: Obj[]): Obj[] =>
  objects.map((o) => ({ ...o, metadata: { ...o.metadata, namespace: "metallb-system" } }));

const networks = fixture<Obj[]>("networks.yaml");
const metallb = fixture<{ pools: Obj[]; l2Advertisements: Obj[] }>("pools.yaml");
const nodes = Object.values(
  fixture<Record<string, { name: string; labels: Record<string, string> }>>("nodes.yaml"),
);
/** The agent's ConfigMap: global settings that change the configuration (rule priorities, pod CIDRs). */
const GLOBALS = "podCIDRs: [10.112.0.0/12]\nrulePriorities: { from: 3000, to: 3999 }\nnetworks: []\n";

describe("plan --kubernetes: the agent's configuration, read once", () => {
  const server = new FakeApiServer()
    .collection(NETWORKS, networks)
    .collection(POOLS, inMetallb(metallb.pools))
    .collection(L2ADS, inMetallb(metallb.l2Advertisements))
    .collection(
      NODES,
      nodes.map((n) => ({ metadata: { name: n.name, labels: n.labels } })),
    );
  const dir = mkdtempSync(join(tmpdir(), "symroute-one-shot-"));
  let kubeconfigFile = "";
  before(async () => {
    await server.start();
    kubeconfigFile = join(dir, "kubeconfig");
    writeFileSync(kubeconfigFile, fakeKubeConfig(server.url, "test-token").exportConfig());
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const { name } of nodes) {
    it(`node ${name}: the informers' view and the agent's configuration`, async () => {
      const kubeConfig = fakeKubeConfig(server.url, "test-token");
      const informers = createKubernetesSource({
        kubeConfig,
        nodeName: name,
        metallbNamespace: "metallb-system",
        clock: systemClock,
        onChange: () => {},
        onError: (what, error) => assert.fail(`${what}: ${String(error)}`),
      });
      informers.start();
      try {
        const watched = await pollUntil("the informers' first list", () => informers.snapshot(), 10_000);
        const once = await readClusterSnapshot({
          kubeConfig,
          nodeName: name,
          metallbNamespace: "metallb-system",
        });
        assert.deepEqual(once, watched);
      } finally {
        await informers.stop();
      }

      const configFile = join(dir, "config.yaml");
      writeFileSync(configFile, GLOBALS);
      const agentSource = new ConfigSource({
        configFile,
        kubernetes: kubernetesWiring(kubeConfig, name),
        clock: systemClock,
        logger: createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
        metrics: createMetrics(),
      });
      agentSource.start(() => {});
      try {
        const desired = await pollUntil("the agent's configuration", async () => {
          const d = await agentSource.desired();
          return d.ready ? d : undefined;
        });
        const { config, cluster } = await readClusterConfig({
          file: { text: GLOBALS, name: configFile },
          nodeName: name,
          kubeconfig: kubeconfigFile,
          metallbNamespace: "metallb-system",
        });
        assert.deepEqual(config, desired.config);
        assert.equal(config.rulePriorities.from, 3000, "the file's global settings are in");
        // Each network's verdict, as the agent's status reasons name them.
        assert.deepEqual(
          cluster.networks.map((n) => n.name),
          desired.verdicts.map((v) => v.network),
        );
        for (const n of cluster.networks) {
          const verdict = desired.verdicts.find((v) => v.network === n.name);
          if (desired.refused.has(n.name)) assert.equal(n.state, "refused");
          else assert.equal(n.state, verdict?.state);
          if (verdict?.state === "invalid") assert.equal(n.reason, verdict.reason);
        }
      } finally {
        await agentSource.stop();
      }
    });
  }

  it("a node the cluster does not have is an error naming it and the server", async () => {
    await assert.rejects(
      readClusterConfig({
        nodeName: "nobody",
        kubeconfig: kubeconfigFile,
        metallbNamespace: "metallb-system",
      }),
      (error: Error) =>
        /node "nobody" is not in the cluster at http:\/\/127\.0\.0\.1:\d+ \(from --kubeconfig /.test(
          error.message,
        ),
    );
  });

  it("an API server without the collections (no CRD: 404) is a dependency error that says what to check", async () => {
    const denied = new FakeApiServer().collection(NODES, []);
    await denied.start();
    try {
      const file = join(dir, "denied");
      writeFileSync(file, fakeKubeConfig(denied.url).exportConfig());
      await assert.rejects(
        readClusterConfig({ nodeName: "node-a", kubeconfig: file, metallbNamespace: "metallb-system" }),
        (error: Error & { kind?: string }) =>
          error.kind === "dependency" &&
          /answered HTTP 404/.test(error.message) &&
          /CRD installed/.test((error as { hint?: string }).hint ?? ""),
      );
    } finally {
      await denied.stop();
    }
  });
});
