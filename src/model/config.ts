// The validated configuration: what src/config/ produces from a file or a custom resource.
// Every prefix and address is canonical text (model/address.ts); every default is filled in.

import type { Family } from "./address.ts";
import type { FirewallBackend } from "./state.ts";

/** How replies for a network's pool are routed; see docs/config.md for each. */
export type Method = "auto" | "none" | "route" | "source" | "connmark";
export type FirewallChoice = "auto" | FirewallBackend;
export type KubeProxyMode = "auto" | "iptables" | "nftables" | "ipvs";

export interface Vlan {
  readonly parent: string;
  readonly id: number;
}

export interface Range {
  readonly from: number;
  readonly to: number;
}

export interface NetworkConfig {
  readonly name: string;
  /** Canonical prefixes ("1.2.3.0/24", a single address as "1.2.3.4"), IPv4 and/or IPv6. */
  readonly addresses: readonly string[];
  readonly interface: string;
  /** At most one gateway per family. */
  readonly gateways: Readonly<Partial<Record<Family, string>>>;
  readonly vlan?: Vlan;
  readonly table?: number;
  readonly method: Method;
}

export interface MarkSettings {
  readonly mask: number;
  /** Components whose documented mark bits the mask must stay clear of. */
  readonly avoid: readonly string[];
}

export interface Config {
  readonly podCIDRs: readonly string[];
  readonly networks: readonly NetworkConfig[];
  readonly firewall: FirewallChoice;
  readonly kubeProxyMode: KubeProxyMode;
  readonly rulePriorities: Range;
  readonly tables: Range;
  readonly marks: MarkSettings;
  /** The `proto` number on every route and rule symroute owns. */
  readonly routeProtocol: number;
  readonly stateDir?: string;
}

export const CONFIG_DEFAULTS = {
  firewall: "auto",
  kubeProxyMode: "auto",
  rulePriorities: { from: 1000, to: 1999 },
  tables: { from: 20000, to: 29999 },
  marks: { mask: 0xff, avoid: ["kube-proxy", "calico", "cilium"] },
  routeProtocol: 201,
  method: "auto",
} as const;
