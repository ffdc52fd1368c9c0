// The end-to-end variants: every case, every backend kind (pod and host-network are cells of every
// matrix; the kube-proxy stand-ins are iptables, nftables and IPVS-like), both firewall front ends,
// IPv4 and dual-stack. Not the full product (4 x 3 x 2 x 2 = 48 runs of ~8 s): in case 1 symroute
// does nothing, so one variant; in case 2 it writes no marks, only ARP probes toward the on-link
// clients and the IPv6 guard, so one variant per front end; in cases 3 and 4 every kube-proxy
// stand-in meets both front ends across the two cases, and so do the two variants with a second node
// (whose pod is a backend the first node DNATs and masquerades to).

import type { LabSpec } from "../../src/lab/spec.ts";

export const VARIANTS: readonly LabSpec[] = [
  { case: 1, kubeProxy: "iptables", firewall: "nftables", dualStack: true },
  { case: 2, kubeProxy: "nftables", firewall: "iptables", dualStack: true },
  { case: 2, kubeProxy: "iptables", firewall: "nftables", dualStack: true },
  { case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: true },
  { case: 3, kubeProxy: "nftables", firewall: "iptables", dualStack: true, nodes: 2 },
  { case: 3, kubeProxy: "ipvs-like", firewall: "nftables", dualStack: false },
  { case: 4, kubeProxy: "iptables", firewall: "nftables", dualStack: true, nodes: 2 },
  { case: 4, kubeProxy: "nftables", firewall: "iptables", dualStack: false },
  { case: 4, kubeProxy: "ipvs-like", firewall: "iptables", dualStack: true },
];
