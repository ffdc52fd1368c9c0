// The end-to-end variants: every case, every backend kind (pod and host-network are cells of every
// matrix; the kube-proxy stand-ins are iptables, nftables and IPVS-like), both firewall front ends,
// IPv4 and dual-stack. Not the full product (4 x 3 x 2 x 2 = 48 runs of ~10 s): each case meets each
// front end, and each kube-proxy stand-in meets each front end, within the suite's time budget.

import type { LabSpec } from "../../src/lab/spec.ts";

export const VARIANTS: readonly LabSpec[] = [
  { case: 1, kubeProxy: "iptables", firewall: "nftables", dualStack: true },
  { case: 1, kubeProxy: "nftables", firewall: "iptables", dualStack: false },
  { case: 2, kubeProxy: "nftables", firewall: "iptables", dualStack: true },
  { case: 2, kubeProxy: "iptables", firewall: "nftables", dualStack: false },
  { case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: true },
  { case: 3, kubeProxy: "nftables", firewall: "iptables", dualStack: true },
  { case: 3, kubeProxy: "ipvs-like", firewall: "nftables", dualStack: false },
  { case: 4, kubeProxy: "iptables", firewall: "iptables", dualStack: true },
  { case: 4, kubeProxy: "nftables", firewall: "nftables", dualStack: false },
  { case: 4, kubeProxy: "ipvs-like", firewall: "iptables", dualStack: true },
];
