// The Kubernetes objects the agent reads and writes, as far as it looks at them.

import type { Condition } from "./conditions.ts";
import type { LabelSelector, Labels } from "./selectors.ts";

export const SYMROUTE_GROUP = "symroute.io";
export const SYMROUTE_VERSION = "v1alpha1";
export const SYMROUTE_KIND = "SymrouteNetwork";
export const SYMROUTE_PLURAL = "symroutenetworks";

export const METALLB_GROUP = "metallb.io";
export const METALLB_VERSION = "v1beta1";
export const POOL_PLURAL = "ipaddresspools";
export const L2ADVERTISEMENT_PLURAL = "l2advertisements";
export const DEFAULT_METALLB_NAMESPACE = "metallb-system";

interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly labels?: Labels;
  readonly generation?: number;
  readonly resourceVersion?: string;
}

interface InterfaceOverride {
  readonly nodeSelector?: LabelSelector;
  readonly interface?: string;
  readonly vlan?: unknown;
}

interface PoolReference {
  readonly names?: readonly string[];
  readonly selector?: LabelSelector;
}

/** The config file's network entry (without `name`, which is the object's name), plus the cluster parts. */
export interface SymrouteNetworkSpec {
  readonly addresses?: readonly string[];
  readonly interface?: string;
  readonly gateway?: unknown;
  readonly vlan?: unknown;
  readonly table?: unknown;
  readonly method?: unknown;
  readonly nodeSelector?: LabelSelector;
  readonly interfaceOverrides?: readonly InterfaceOverride[];
  readonly pools?: PoolReference;
  readonly [key: string]: unknown;
}

export interface NodeStatus {
  readonly converged: boolean;
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

export interface SymrouteNetwork {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: ObjectMeta;
  readonly spec?: SymrouteNetworkSpec;
  readonly status?: {
    readonly nodes?: Readonly<Record<string, NodeStatus>>;
    readonly conditions?: readonly Condition[];
    readonly convergedNodes?: string;
  };
}

export interface IpAddressPool {
  readonly metadata: ObjectMeta;
  readonly spec?: { readonly addresses?: readonly string[] };
}

export interface L2Advertisement {
  readonly metadata: ObjectMeta;
  readonly spec?: {
    readonly ipAddressPools?: readonly string[];
    readonly ipAddressPoolSelectors?: readonly LabelSelector[];
    readonly nodeSelectors?: readonly LabelSelector[];
    readonly interfaces?: readonly string[];
  };
}

export interface NodeInfo {
  readonly name: string;
  readonly labels: Labels;
}
