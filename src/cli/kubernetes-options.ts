// The flags that take a node's networks from the cluster, one definition for `agent`, `plan` and
// `doctor`: the same names, defaults and environment variable wherever they appear. Nothing here
// loads the Kubernetes client (src/cli/cluster-config.ts does, only with --kubernetes).

import { Option } from "@commander-js/extra-typings";
import { DEFAULT_METALLB_NAMESPACE } from "../agent/kubernetes/resources.ts";
import { SymrouteError } from "../model/errors.ts";

export const kubernetesOption = (description: string) => new Option("--kubernetes", description);

export const nodeNameOption = () =>
  new Option("--node-name <name>", "this node's name (with --kubernetes)").env("NODE_NAME");

export const kubeconfigOption = () =>
  new Option(
    "--kubeconfig <file>",
    "kubeconfig (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account)",
  );

export const metallbNamespaceOption = () =>
  new Option(
    "--metallb-namespace <ns>",
    "namespace of MetalLB's IPAddressPools and L2Advertisements",
  ).default(DEFAULT_METALLB_NAMESPACE);

/** --node-name (or NODE_NAME), which --kubernetes needs: the networks are this node's. */
export function requireNodeName(nodeName: string | undefined): string {
  if (nodeName === undefined || nodeName === "") {
    throw new SymrouteError(
      "invalid-argument",
      "--kubernetes needs --node-name (or the NODE_NAME environment variable)",
      { hint: "in a DaemonSet, set NODE_NAME from the downward API (fieldRef spec.nodeName)" },
    );
  }
  return nodeName;
}

/** The flags that mean something only with --kubernetes, by their option keys. */
const KUBERNETES_ONLY = [
  ["nodeName", "--node-name"],
  ["kubeconfig", "--kubeconfig"],
  ["metallbNamespace", "--metallb-namespace"],
] as const;

interface CommandOptions {
  opts(): Record<string, unknown>;
  getOptionValueSource(key: string): string | undefined;
  error(message: string): never;
}

/**
 * A usage error for --node-name, --kubeconfig or --metallb-namespace given without --kubernetes:
 * they were silently ignored, and `plan -c FILE --node-name n1` answered for the file alone. Only
 * what the command line gives: NODE_NAME from the environment (a DaemonSet sets it for every
 * command) is not an error.
 */
export function refuseKubernetesFlagsWithout(command: CommandOptions): void {
  if (command.opts()["kubernetes"] === true) return;
  for (const [key, flag] of KUBERNETES_ONLY)
    if (command.getOptionValueSource(key) === "cli")
      command.error(`error: ${flag} is used only with --kubernetes; add --kubernetes, or leave ${flag} out`);
}
