// Step 2: read the node. Routing and the firewall are read side by side; the firewall's read (the
// slower one at thousands of rules) is handed on unfinished, so that planning overlaps it.

import type { Config } from "../../config/schema.ts";
import type { FirewallBackend, NodeState } from "../../model/state.ts";
import { resolveFirewall } from "../../plan/desired.ts";
import { SYSCTLS_TO_READ } from "../../plan/sysctls.ts";
import type { Kernel, SavedState } from "../ports.ts";
import type { Observation } from "../types.ts";

/**
 * The node with the sysctls symroute manages, the firewall front ends named (none by default), and
 * kube-proxy's traces and the datapath of the config's interfaces when asked for.
 */
export function readNode(
  kernel: Kernel,
  options: {
    readonly firewalls?: readonly FirewallBackend[];
    readonly kubeProxyHints?: boolean;
    readonly datapathOf?: Config;
  } = {},
): Promise<NodeState> {
  const { firewalls = [], kubeProxyHints = false, datapathOf } = options;
  return kernel.readNode({
    ...SYSCTLS_TO_READ,
    firewalls,
    kubeProxyHints,
    ...(datapathOf === undefined
      ? {}
      : { datapath: { interfaces: [...new Set(datapathOf.networks.map((n) => n.interface))] } }),
  });
}

/**
 * Reads what a plan needs. With `removing` (delete), no front end is wanted: every one that may
 * hold symroute's objects is read.
 */
export async function observe(
  kernel: Kernel,
  config: Config | undefined,
  saved: SavedState | undefined,
  removing: boolean,
): Promise<Observation> {
  const [available, ipsetAvailable] = await Promise.all([
    kernel.availableFirewalls(),
    kernel.ipsetAvailable(),
  ]);
  // A missing firewall tool is reported after the node was read, so that a missing `ip` (the
  // tool everything needs) is the error a user sees first.
  let firewallError: unknown;
  let firewall: FirewallBackend | undefined;
  try {
    firewall = config === undefined || removing ? undefined : resolveFirewall(config, available);
  } catch (error) {
    firewallError = error;
  }
  // Only the front ends that can hold symroute's objects: the one wanted and the one last used.
  // Without a record (a first run, or a lost state file) every available one is read, and so with a
  // record still in progress (a crash, or an incomplete roll back): one written before a move of
  // front end names the new one, and the old one's objects are still on the node.
  const firewallsRead =
    saved === undefined || firewall === undefined || saved.inProgress === true
      ? available
      : available.filter((b) => b === firewall || b === saved.firewall);
  const firewallRead = kernel.readFirewall(firewallsRead);
  firewallRead.catch(() => undefined); // awaited by the caller; a rejection must not count as unhandled
  const routing = await readNode(kernel, {
    kubeProxyHints: config?.kubeProxyMode === "auto" && !removing,
    ...(removing || config === undefined ? {} : { datapathOf: config }),
  });
  if (firewallError !== undefined) throw firewallError;
  return { routing, available, ipsetAvailable, firewall, firewallRead };
}
