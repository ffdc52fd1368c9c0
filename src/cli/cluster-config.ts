// `plan --kubernetes`, `doctor --kubernetes`: the configuration the agent converges this node to,
// read once from the cluster (no watch) and merged with the config file by the agent's own function
// (configFromCluster). Loaded only with --kubernetes: it brings in the Kubernetes client.

import { loadConfigOrThrow } from "../config/index.ts";
import type { Config } from "../config/schema.ts";
import { configFromCluster, EMPTY_FILE, readConfigFile } from "../agent/desired-config.ts";
import type { NetworkVerdict } from "../agent/kubernetes/cluster.ts";
import { ApiException } from "../agent/kubernetes/client-node.ts";
import { describeMissingKubeConfig, discoverKubeConfig } from "../agent/kubernetes/kubeconfig.ts";
import { readClusterSnapshot } from "../agent/kubernetes/source.ts";
import { SymrouteError } from "../model/errors.ts";

/** What one SymrouteNetwork means for this node, as plan and doctor report it. */
export interface ClusterNetwork {
  readonly name: string;
  /** `refused`: selected, but the config validator refused it beside the others (the agent's `InvalidSpec`). */
  readonly state: NetworkVerdict["state"] | "refused";
  /** The reason the agent writes in the network's status for this node, when it is not converging it. */
  readonly reason?: string;
  readonly message?: string;
}

export interface ClusterView {
  readonly node: string;
  /** The API server, and where its address came from. */
  readonly server: string;
  readonly networks: readonly ClusterNetwork[];
}

export interface ClusterConfigOptions {
  /** The config file's text and name (-c), for the global settings and local networks. */
  readonly file?: { readonly text: string; readonly name: string };
  readonly nodeName: string;
  readonly kubeconfig: string | undefined;
  readonly metallbNamespace: string;
}

export async function readClusterConfig(
  options: ClusterConfigOptions,
): Promise<{ readonly config: Config; readonly cluster: ClusterView }> {
  let file = EMPTY_FILE;
  if (options.file !== undefined) {
    // A file with problems fails as `plan -c` fails on it (the same error, every problem named).
    loadConfigOrThrow(options.file.text, options.file.name);
    file = readConfigFile(options.file.text, options.file.name);
  }
  if (!file.ok) throw new SymrouteError("invalid-argument", "the configuration file has problems");
  const found = discover(options.kubeconfig);
  const server = `${found.server} (from ${found.from})`;
  let snapshot;
  try {
    snapshot = await readClusterSnapshot({
      kubeConfig: found.kubeConfig,
      nodeName: options.nodeName,
      metallbNamespace: options.metallbNamespace,
    });
  } catch (error) {
    throw apiError(error, server, options.metallbNamespace);
  }
  if (snapshot === undefined) {
    throw new SymrouteError(
      "invalid-argument",
      `node ${JSON.stringify(options.nodeName)} is not in the cluster at ${server}`,
      { hint: "check --node-name (NODE_NAME): `kubectl get nodes` lists the names" },
    );
  }
  const { verdicts, merged } = configFromCluster(file, snapshot);
  const networks = verdicts.map((v): ClusterNetwork => {
    const refused = merged.refused.get(v.network);
    if (refused !== undefined)
      return { name: v.network, state: "refused", reason: "InvalidSpec", message: refused };
    if (v.state === "invalid")
      return { name: v.network, state: v.state, reason: v.reason, message: v.message };
    if (v.state === "not-announced")
      return { name: v.network, state: v.state, reason: "NotAnnounced", message: v.message };
    return { name: v.network, state: v.state };
  });
  return { config: merged.config, cluster: { node: options.nodeName, server, networks } };
}

/** The kubeconfig the agent would find; for a one-shot command, not found is an error at once. */
function discover(kubeconfig: string | undefined) {
  let found;
  try {
    found = discoverKubeConfig(kubeconfig);
  } catch (cause) {
    throw new SymrouteError(
      "invalid-argument",
      `cannot load the Kubernetes API configuration: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
  if (found.found) return found;
  if (kubeconfig !== undefined)
    throw new SymrouteError("invalid-argument", `--kubeconfig ${kubeconfig}: no such file`, {
      hint: "correct the path, or leave --kubeconfig out: symroute then looks in $KUBECONFIG, in ~/.kube/config and in-cluster",
    });
  throw new SymrouteError("dependency", describeMissingKubeConfig(found.tried), {
    hint: "give --kubeconfig FILE, or run it in the agent's pod (its service account): kubectl exec -n symroute-system ds/symroute-agent -- /app/bin/symroute ...",
  });
}

/** A failed list, in words: the server, and the HTTP status when the API server answered. */
function apiError(error: unknown, server: string, metallbNamespace: string): SymrouteError {
  if (error instanceof ApiException) {
    const code = error.code;
    const denied = code === 401 || code === 403;
    return new SymrouteError(
      denied ? "permission" : "dependency",
      `the Kubernetes API at ${server} answered HTTP ${code} to a list of the cluster's networks`,
      {
        cause: error,
        hint: denied
          ? `the identity needs to list symroutenetworks, nodes, and ipaddresspools and l2advertisements in ${metallbNamespace} (deploy/rbac.yaml grants the agent's service account exactly that)`
          : `is the SymrouteNetwork CRD installed (deploy/crd.yaml), and MetalLB's in ${metallbNamespace} (--metallb-namespace)?`,
      },
    );
  }
  return new SymrouteError(
    "dependency",
    `cannot reach the Kubernetes API at ${server}: ${error instanceof Error ? error.message : String(error)}`,
    {
      cause: error,
      retriable: true,
      hint: `check the API server's address, ${server}, and that this node reaches it (the API server down, a firewall or proxy in the way)`,
    },
  );
}
