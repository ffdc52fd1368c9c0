// The file shape as an OpenAPI v3 structural schema, for the spec of a Kubernetes custom resource.
// Structural means: every property has a type, no additionalProperties:false (Kubernetes prunes
// unknown fields itself), no type inside anyOf. So `gateway` is a list of strings here (the loader
// also takes a single string), and `marks.mask` an integer (the loader also takes "0xff" text).
// The loader still runs on the spec: the schema is a first gate, not the validation. No `default`s:
// the loader fills them, so a stored resource keeps what its author wrote.

import { CONFIG_DEFAULTS } from "../model/config.ts";
import {
  FIREWALLS,
  INTERFACE_NAME_MAX,
  INTERFACE_NAME_PATTERN,
  KUBE_PROXY_MODES,
  MARK_MASK_MAX,
  MARK_OWNER_NAMES,
  METHODS,
  NETWORK_NAME_MAX,
  NETWORK_NAME_PATTERN,
  ROUTE_PROTOCOL_MAX,
  ROUTE_PROTOCOL_MIN,
  RULE_PRIORITY_MAX,
  RULE_PRIORITY_MIN,
  TABLE_MAX,
  TABLE_MIN,
  VLAN_ID_MAX,
  VLAN_ID_MIN,
} from "./fields.ts";

type Schema = Record<string, unknown>;

const interfaceName = (description: string): Schema => ({
  type: "string",
  description,
  minLength: 1,
  maxLength: INTERFACE_NAME_MAX,
  pattern: INTERFACE_NAME_PATTERN,
});

const range = (description: string, min: number, max: number): Schema => ({
  type: "object",
  description,
  required: ["from", "to"],
  properties: {
    from: { type: "integer", minimum: min, maximum: max },
    to: { type: "integer", minimum: min, maximum: max },
  },
});

const prefixList = (description: string): Schema => ({
  type: "array",
  description,
  items: { type: "string", minLength: 1, maxLength: 64 },
});

export function configJsonSchema(): Record<string, unknown> {
  return {
    type: "object",
    description: "symroute configuration (see docs/config.md).",
    required: ["networks"],
    properties: {
      podCIDRs: prefixList("Pod CIDRs of the cluster; pools must not overlap them."),
      networks: {
        type: "array",
        description: "One entry per external network whose MetalLB pool needs its replies routed.",
        items: {
          type: "object",
          required: ["name", "addresses", "interface"],
          properties: {
            name: {
              type: "string",
              description: "Unique name: lowercase letters, digits and '-'.",
              minLength: 1,
              maxLength: NETWORK_NAME_MAX,
              pattern: NETWORK_NAME_PATTERN,
            },
            addresses: { ...prefixList("The MetalLB pool(s): CIDRs or single addresses."), minItems: 1 },
            interface: interfaceName("Where requests for these addresses arrive."),
            gateway: {
              type: "array",
              description: "The router replies go back through: at most one IPv4 and one IPv6 address.",
              maxItems: 2,
              items: { type: "string", minLength: 1, maxLength: 64 },
            },
            vlan: {
              type: "object",
              description: "Create `interface` as an 802.1Q VLAN on `parent`.",
              required: ["parent", "id"],
              properties: {
                parent: interfaceName("The link the VLAN is created on."),
                id: { type: "integer", minimum: VLAN_ID_MIN, maximum: VLAN_ID_MAX },
              },
            },
            table: {
              type: "integer",
              description: "Routing table; allocated from `tables` when not given. Not 0, 253, 254, 255.",
              minimum: TABLE_MIN,
              maximum: TABLE_MAX,
            },
            method: { type: "string", enum: [...METHODS], description: `Default ${CONFIG_DEFAULTS.method}.` },
          },
        },
      },
      firewall: { type: "string", enum: [...FIREWALLS], description: `Default ${CONFIG_DEFAULTS.firewall}.` },
      kubeProxyMode: {
        type: "string",
        enum: [...KUBE_PROXY_MODES],
        description: `Default ${CONFIG_DEFAULTS.kubeProxyMode}.`,
      },
      rulePriorities: range(
        "The band of `ip rule` priorities symroute owns.",
        RULE_PRIORITY_MIN,
        RULE_PRIORITY_MAX,
      ),
      tables: range("Where tables are allocated from; must avoid 253-255.", TABLE_MIN, TABLE_MAX),
      marks: {
        type: "object",
        description: "Firewall mark bits symroute may use.",
        properties: {
          mask: { type: "integer", minimum: 1, maximum: MARK_MASK_MAX },
          avoid: { type: "array", items: { type: "string", enum: [...MARK_OWNER_NAMES] } },
        },
      },
      routeProtocol: {
        type: "integer",
        description: "The `proto` of symroute's routes and rules.",
        minimum: ROUTE_PROTOCOL_MIN,
        maximum: ROUTE_PROTOCOL_MAX,
      },
      stateDir: {
        type: "string",
        description: "Absolute path of symroute's state directory.",
        pattern: "^/",
      },
    },
  };
}
