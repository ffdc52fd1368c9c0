// Wiring an agent to the fake API server: a kubeconfig pointing at it, and the agent's Kubernetes
// source reading it as one node, the way `agent --kubernetes` wires the real one.

import { KubeConfig } from "@kubernetes/client-node";
import { systemClock } from "../../../src/agent/clock.ts";
import type { KubernetesWiring } from "../../../src/agent/config-source.ts";
import { createKubernetesSource } from "../../../src/agent/kubernetes/source.ts";

/** A kubeconfig for the server at `url` (with a bearer token when given). */
export function fakeKubeConfig(url: string, token?: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [token === undefined ? { name: "agent" } : { name: "agent", token }],
    contexts: [{ name: "fake", cluster: "fake", user: "agent" }],
    currentContext: "fake",
  });
  return kubeConfig;
}

/** The agent's `kubernetes` option for node `nodeName` of that cluster (MetalLB in metallb-system). */
export function kubernetesWiring(
  kubeConfig: KubeConfig,
  nodeName: string,
  extra: Omit<KubernetesWiring, "nodeName" | "createSource"> = {},
): KubernetesWiring {
  return {
    nodeName,
    ...extra,
    createSource: (callbacks) =>
      createKubernetesSource({
        kubeConfig,
        nodeName,
        metallbNamespace: "metallb-system",
        clock: systemClock,
        ...callbacks,
      }),
  };
}
