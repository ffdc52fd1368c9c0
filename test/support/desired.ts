// The desired state of a config on the article's node (nftables, kube-proxy in iptables mode), and
// the ownership marks a fresh node's diff takes: what the plan's pure tests start from.

import type { Config } from "../../src/config/schema.ts";
import { computeDesired } from "../../src/plan/desired.ts";
import type { DesiredState } from "../../src/plan/types.ts";
import { articleNode } from "./fake-kernel.ts";

export function desiredOnArticleNode(config: Config): DesiredState {
  return computeDesired({
    config,
    node: articleNode(),
    saved: undefined,
    firewall: "nftables",
    kubeProxyMode: "iptables",
  });
}

/** The ownership marks of a node symroute has not touched yet, under `config`'s settings. */
export const freshOwnership = (config: Config) => ({
  routeProtocol: config.routeProtocol,
  rulePriorities: config.rulePriorities,
  previousSysctls: {},
  createdLinks: [],
});
