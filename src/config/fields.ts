// The names, choices and limits of the configuration file: one place that the validator, the CRD
// schema and the tests all read, so the three cannot drift apart.

import { KNOWN_MARK_OWNERS } from "../model/marks.ts";

export const TOP_LEVEL_KEYS = [
  "podCIDRs",
  "networks",
  "firewall",
  "kubeProxyMode",
  "rulePriorities",
  "tables",
  "marks",
  "routeProtocol",
  "stateDir",
] as const;

export const NETWORK_KEYS = ["name", "addresses", "interface", "gateway", "vlan", "table", "method"] as const;
export const VLAN_KEYS = ["parent", "id"] as const;
export const RANGE_KEYS = ["from", "to"] as const;
export const MARKS_KEYS = ["mask", "avoid"] as const;

export const METHODS = ["auto", "none", "route", "source", "connmark"] as const;
export const FIREWALLS = ["auto", "nftables", "iptables"] as const;
export const KUBE_PROXY_MODES = ["auto", "iptables", "nftables", "ipvs"] as const;
/** Methods that send replies through a table whose default route is the network's gateway. */
export const GATEWAY_METHODS = ["source", "connmark"] as const;

export const MARK_OWNER_NAMES: readonly string[] = Object.keys(KNOWN_MARK_OWNERS);

/** Like a Kubernetes DNS label: it ends up in rule comments, keys and file names. */
export const NETWORK_NAME_PATTERN = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";
export const NETWORK_NAME_MAX = 63;

/** What symroute accepts as an interface name: a safe subset of what the kernel accepts. */
export const INTERFACE_NAME_PATTERN = "^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$";
/** IFNAMSIZ (16) minus the terminating NUL. */
export const INTERFACE_NAME_MAX = 15;

export const VLAN_ID_MIN = 1;
export const VLAN_ID_MAX = 4094;

/** `ip rule` priorities: 0 is the local rule, 32766 and 32767 are main and default. */
export const RULE_PRIORITY_MIN = 1;
export const RULE_PRIORITY_MAX = 32765;

export const TABLE_MIN = 1;
export const TABLE_MAX = 4294967295;

/** rtnetlink: 0-4 are reserved for the kernel, boot and static; symroute takes the number it is given. */
export const ROUTE_PROTOCOL_MIN = 5;
export const ROUTE_PROTOCOL_MAX = 255;

export const MARK_MASK_MAX = 0xffffffff;

/**
 * Route protocols registered to other software (linux/rtnetlink.h, iproute2 rt_protos). symroute
 * treats routes and rules with its protocol as its own and removes them, so these are refused.
 */
export const REGISTERED_ROUTE_PROTOCOLS: Readonly<Record<number, string>> = {
  8: "gated",
  9: "ra",
  10: "mrt",
  11: "zebra",
  12: "bird",
  13: "dnrouted",
  14: "xorp",
  15: "ntk",
  16: "dhcp",
  17: "mrouted",
  18: "keepalived",
  42: "babel",
  99: "openr",
  186: "bgp",
  187: "isis",
  188: "ospf",
  189: "rip",
  192: "eigrp",
};
