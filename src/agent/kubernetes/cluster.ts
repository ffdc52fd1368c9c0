// From cluster objects to config-file network entries for one node: a pure function, after MetalLB's
// internal/config (resources in, a validated config or named problems out). Every problem names the
// object and the value, and becomes that object's status for this node.

import { agreeing } from "../../model/plural.ts";
import { networkNameProblem } from "../../config/names.ts";
import { poolEntryToPrefixes } from "./pool-addresses.ts";
import type {
  IpAddressPool,
  L2Advertisement,
  NodeInfo,
  SymrouteNetwork,
  SymrouteNetworkSpec,
} from "./resources.ts";
import { matchSelector, type LabelSelector, type Labels } from "./selectors.ts";

/** What a SymrouteNetwork means for this node. */
export type NetworkVerdict =
  /** Applies here; `entry` is a network entry in the config file's shape. */
  | { readonly network: string; readonly state: "selected"; readonly entry: Record<string, unknown> }
  /** Its nodeSelector leaves this node out: nothing to do, no status written. */
  | { readonly network: string; readonly state: "not-selected" }
  /** Its pools are not announced (L2) from this node: nothing to route here. */
  | { readonly network: string; readonly state: "not-announced"; readonly message: string }
  | {
      readonly network: string;
      readonly state: "invalid";
      readonly reason: string;
      readonly message: string;
    };

interface ClusterInput {
  readonly networks: readonly SymrouteNetwork[];
  readonly pools: readonly IpAddressPool[];
  readonly l2Advertisements: readonly L2Advertisement[];
  readonly node: NodeInfo;
}

/** Keys of the spec that are the config file's network entry, passed through as they are. */
const PASS_THROUGH = ["gateway", "vlan", "table", "method"] as const;
const CLUSTER_KEYS = new Set([
  "addresses",
  "interface",
  "nodeSelector",
  "interfaceOverrides",
  "pools",
  ...PASS_THROUGH,
]);

export function networksFromCluster(input: ClusterInput): NetworkVerdict[] {
  const sorted = [...input.networks].sort((a, b) =>
    (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""),
  );
  return sorted.map((network) => verdictFor(network, input));
}

function invalid(network: string, reason: string, message: string): NetworkVerdict {
  return { network, state: "invalid", reason, message };
}

function selectorProblem(
  where: string,
  selector: LabelSelector | undefined,
  labels: Labels,
): string | undefined {
  const { problem } = matchSelector(selector, labels);
  return problem === undefined ? undefined : `${where}: ${problem}`;
}

function verdictFor(object: SymrouteNetwork, input: ClusterInput): NetworkVerdict {
  const name = object.metadata.name ?? "";
  const spec: SymrouteNetworkSpec = object.spec ?? {};
  const nameProblem = networkNameProblem(name);
  if (nameProblem !== undefined) {
    return invalid(
      name,
      "InvalidName",
      `the object name ${JSON.stringify(name)} ${nameProblem} as a network name`,
    );
  }
  const unknown = Object.keys(spec).filter((k) => !CLUSTER_KEYS.has(k));
  if (unknown.length > 0) {
    return invalid(
      name,
      "InvalidSpec",
      `spec has unknown ${agreeing(unknown.length, "field", "fields")} ${unknown.map((k) => JSON.stringify(k)).join(", ")}`,
    );
  }
  const nodeLabels = input.node.labels;
  const badSelector = selectorProblem("spec.nodeSelector", spec.nodeSelector, nodeLabels);
  if (badSelector !== undefined) return invalid(name, "InvalidSpec", badSelector);
  if (!matchSelector(spec.nodeSelector, nodeLabels).matches) return { network: name, state: "not-selected" };

  // Pools: by name and by label selector, in MetalLB's namespace.
  const addresses: string[] = [...(spec.addresses ?? [])];
  const l2Interfaces = new Set<string>();
  if (spec.pools !== undefined) {
    const selected = new Map<string, IpAddressPool>();
    for (const poolName of spec.pools.names ?? []) {
      const pool = input.pools.find((p) => p.metadata.name === poolName);
      if (pool === undefined) {
        return invalid(
          name,
          "PoolNotFound",
          `spec.pools.names: IPAddressPool ${JSON.stringify(poolName)} does not exist in MetalLB's namespace`,
        );
      }
      selected.set(poolName, pool);
    }
    if (spec.pools.selector !== undefined) {
      const bad = selectorProblem("spec.pools.selector", spec.pools.selector, {});
      if (bad !== undefined) return invalid(name, "InvalidSpec", bad);
      for (const pool of input.pools) {
        if (matchSelector(spec.pools.selector, pool.metadata.labels ?? {}).matches) {
          selected.set(pool.metadata.name ?? "", pool);
        }
      }
    }
    const announced = [...selected.values()]
      .sort((a, b) => (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""))
      .filter((pool) => {
        const ads = advertisementsFor(pool, input.l2Advertisements, nodeLabels);
        for (const ad of ads) for (const i of ad.spec?.interfaces ?? []) l2Interfaces.add(i);
        return ads.length > 0;
      });
    for (const pool of announced) {
      for (const entry of pool.spec?.addresses ?? []) {
        const result = poolEntryToPrefixes(entry);
        if (!result.ok) {
          return invalid(
            name,
            "InvalidPool",
            `IPAddressPool ${JSON.stringify(pool.metadata.name)}: ${result.problem}`,
          );
        }
        addresses.push(...result.prefixes);
      }
    }
    if (addresses.length === 0) {
      if (selected.size === 0) {
        return invalid(
          name,
          "PoolNotFound",
          "spec.pools selects no IPAddressPool and spec.addresses is empty",
        );
      }
      return {
        network: name,
        state: "not-announced",
        message:
          `no L2Advertisement announces ${agreeing(selected.size, "IPAddressPool", "IPAddressPools")} ${[...selected.keys()].map((n) => JSON.stringify(n)).join(", ")} ` +
          `from node ${input.node.name}: MetalLB sends no traffic for ${agreeing(selected.size, "it", "them")} here`,
      };
    }
  }
  if (addresses.length === 0) {
    return invalid(name, "NoAddresses", "give spec.addresses or spec.pools (names or a selector)");
  }

  // Interface: a matching override, else the spec, else the one interface the L2Advertisements name.
  let iface: string | undefined = spec.interface;
  let vlan: unknown = spec.vlan;
  for (const [index, override] of (spec.interfaceOverrides ?? []).entries()) {
    const where = `spec.interfaceOverrides[${index}].nodeSelector`;
    const bad = selectorProblem(where, override.nodeSelector, nodeLabels);
    if (bad !== undefined) return invalid(name, "InvalidSpec", bad);
    if (matchSelector(override.nodeSelector, nodeLabels).matches) {
      if (override.interface !== undefined) iface = override.interface;
      if (override.vlan !== undefined) vlan = override.vlan;
      break;
    }
  }
  if (iface === undefined) {
    if (l2Interfaces.size === 1) {
      iface = [...l2Interfaces][0];
    } else {
      return invalid(
        name,
        "InterfaceUnknown",
        l2Interfaces.size === 0
          ? "give spec.interface (or an interfaceOverrides entry for this node): the L2Advertisements name no interface"
          : `give spec.interface: the L2Advertisements name several interfaces (${[...l2Interfaces].join(", ")})`,
      );
    }
  }

  const entry: Record<string, unknown> = { name, addresses: dedupe(addresses), interface: iface };
  for (const key of PASS_THROUGH) {
    const value = key === "vlan" ? vlan : spec[key];
    if (value !== undefined) entry[key] = value;
  }
  return { network: name, state: "selected", entry };
}

/** The L2Advertisements that announce `pool` from a node with these labels. */
function advertisementsFor(
  pool: IpAddressPool,
  advertisements: readonly L2Advertisement[],
  nodeLabels: Labels,
): L2Advertisement[] {
  const poolName = pool.metadata.name ?? "";
  const poolLabels = pool.metadata.labels ?? {};
  return advertisements.filter((ad) => {
    const names = ad.spec?.ipAddressPools ?? [];
    const selectors = ad.spec?.ipAddressPoolSelectors ?? [];
    // MetalLB: an advertisement that names no pools and no selectors covers every pool.
    const coversPool =
      (names.length === 0 && selectors.length === 0) ||
      names.includes(poolName) ||
      selectors.some((s) => matchSelector(s, poolLabels).matches);
    const nodeSelectors = ad.spec?.nodeSelectors ?? [];
    const coversNode =
      nodeSelectors.length === 0 || nodeSelectors.some((s) => matchSelector(s, nodeLabels).matches);
    return coversPool && coversNode;
  });
}

function dedupe(values: readonly string[]): string[] {
  return [...new Set(values)];
}
