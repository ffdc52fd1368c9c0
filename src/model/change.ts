// The changes a plan asks for, which render turns into each tool's input.

import type { FirewallBackend, Route, Rule } from "./state.ts";

export interface VlanSpec {
  readonly ifname: string;
  readonly parent: string;
  readonly id: number;
}

export type Change =
  | { readonly kind: "link"; readonly action: "add" | "delete"; readonly vlan: VlanSpec }
  | { readonly kind: "route"; readonly action: "add" | "delete"; readonly route: Route }
  | { readonly kind: "route"; readonly action: "replace"; readonly route: Route; readonly previous: Route }
  | { readonly kind: "rule"; readonly action: "add" | "delete"; readonly rule: Rule }
  | {
      readonly kind: "sysctl";
      readonly action: "set";
      readonly name: string;
      readonly from: string | undefined;
      readonly to: string;
    }
  | {
      readonly kind: "firewall";
      readonly action: "replace" | "delete";
      readonly backend: FirewallBackend;
      readonly rules: number;
    };
