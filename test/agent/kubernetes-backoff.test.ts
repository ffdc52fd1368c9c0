// `agent --kubernetes` without an API: it names every place it looked for a kubeconfig, and retries
// with backoff: one log line per round for all informers together, the delay doubling each round
// (before, every informer logged "HTTP protocol is not allowed..." on its own, four lines a second).

import { strict as assert } from "node:assert";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { discoverKubeConfig, type DiscoveryEnvironment } from "../../src/agent/kubernetes/kubeconfig.ts";
import {
  API_BACKOFF,
  createDiscoveringSource,
  createKubernetesSource,
  DISCOVERY_BACKOFF,
} from "../../src/agent/kubernetes/source.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { pollUntil } from "./support/agent-process.ts";

const nothing: DiscoveryEnvironment = {
  env: {},
  home: "/home/nobody",
  exists: () => false,
  tokenPath: "/var/run/secrets/kubernetes.io/serviceaccount/token",
};

describe("finding the Kubernetes API configuration", () => {
  it("with nothing anywhere, names every place it tried (and never falls back to localhost:8080)", () => {
    const result = discoverKubeConfig(undefined, nothing);
    assert.equal(result.found, false);
    assert.deepEqual(!result.found && result.tried, [
      "--kubeconfig (not given)",
      "$KUBECONFIG (unset)",
      "/home/nobody/.kube/config (no such file)",
      "in-cluster service account (KUBERNETES_SERVICE_HOST/PORT unset)",
    ]);
  });

  it("says which file was missing: $KUBECONFIG, --kubeconfig, the service account token", () => {
    const withEnv = discoverKubeConfig(undefined, {
      ...nothing,
      env: {
        KUBECONFIG: "/etc/k/a:/etc/k/b",
        KUBERNETES_SERVICE_HOST: "10.96.0.1",
        KUBERNETES_SERVICE_PORT: "443",
      },
    });
    assert.ok(!withEnv.found);
    assert.ok(withEnv.tried.includes("$KUBECONFIG /etc/k/a:/etc/k/b (no such file)"));
    assert.ok(
      withEnv.tried.includes(
        "in-cluster service account (/var/run/secrets/kubernetes.io/serviceaccount/token: no such file)",
      ),
    );
    const explicit = discoverKubeConfig("/etc/k/agent.yaml", nothing);
    assert.ok(!explicit.found);
    assert.deepEqual(explicit.tried, ["--kubeconfig /etc/k/agent.yaml (no such file)"]);
  });

  it("without a configuration the source looks again with growing delays, one line per attempt", async () => {
    const clock = new FakeClock();
    const errors: { message: string; retryInMs: number | undefined }[] = [];
    let attempts = 0;
    const source = createDiscoveringSource({
      clock,
      discover: () => {
        attempts++;
        return discoverKubeConfig(undefined, nothing);
      },
      create: () => assert.fail("nothing to connect to"),
      onError: (_what, error, retryInMs) => errors.push({ message: String(error), retryInMs }),
    });
    source.start();
    assert.equal(attempts, 1);
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]?.message ?? "",
      /no Kubernetes API configuration found; tried: --kubeconfig \(not given\), \$KUBECONFIG \(unset\)/,
    );
    assert.match(source.waitingFor(), /in-cluster service account/);
    assert.equal(source.snapshot(), undefined);
    await clock.advance(DISCOVERY_BACKOFF.initialMs - 1);
    assert.equal(attempts, 1, "nothing before the delay");
    await clock.advance(1);
    await clock.advance(DISCOVERY_BACKOFF.initialMs * 2);
    assert.equal(attempts, 3);
    assert.deepEqual(
      errors.map((e) => e.retryInMs),
      [1, 2, 4].map((f) => f * DISCOVERY_BACKOFF.initialMs),
    );
    await source.stop();
    assert.deepEqual(clock.pendingDelays(), []);
  });

  it("an unreachable API server: all informers share one backoff and one log line per round", async () => {
    // A port that refuses connections: bound once to get a free number, then closed.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: "gone", server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: "agent", token: "t" }],
      contexts: [{ name: "gone", cluster: "gone", user: "agent" }],
      currentContext: "gone",
    });
    const clock = new FakeClock();
    const errors: { what: string; retryInMs: number | undefined }[] = [];
    const source = createKubernetesSource({
      kubeConfig,
      from: "test kubeconfig",
      nodeName: "node-a",
      metallbNamespace: "metallb-system",
      clock,
      onChange: () => {},
      onError: (what, _error, retryInMs) => errors.push({ what, retryInMs }),
    });
    source.start();
    const allFailed = (round: number) => () =>
      source.retryState().waiting.length === 4 && errors.length === round ? true : undefined;
    try {
      for (let round = 1; round <= 3; round++) {
        await pollUntil(`round ${round}: every informer failed`, allFailed(round), 10_000);
        const delay = API_BACKOFF.initialMs * 2 ** (round - 1);
        assert.equal(errors.length, round, "one line for four informers");
        assert.equal(errors.at(-1)?.retryInMs, delay);
        assert.match(
          errors.at(-1)?.what ?? "",
          new RegExp(`from https://127\\.0\\.0\\.1:${port} \\(from test kubeconfig\\)`),
        );
        assert.deepEqual(clock.pendingDelays(), [delay], "one retry timer, not one per informer");
        assert.equal(source.retryState().failures, round);
        await clock.advance(delay);
      }
    } finally {
      await source.stop();
    }
    assert.deepEqual(clock.pendingDelays(), []);
  });
});
