// Datapaths that handle service traffic outside netfilter (issue 13 item 6). Cilium's kube-proxy
// replacement and Calico's eBPF dataplane DNAT LoadBalancer traffic in BPF programs on the external
// interface (tc or XDP), before netfilter: conntrack never sees the request, symroute's connection
// mark is never set, and replies cannot be steered. Pure: an observed node in, what was found out.
//
// What the projects document and pin (names only, read from the node):
// - Cilium: links cilium_host/cilium_net (and cilium_vxlan/cilium_geneve with tunnelling), maps
//   pinned in /sys/fs/bpf/tc/globals as cilium_*, the service map cilium_lb4_services_v2 /
//   cilium_lb6_services_v2, and for NodePort/LoadBalancer handling the program cil_from_netdev
//   (object bpf_netdev, section from-netdev) on tc ingress of the external devices, or
//   cil_xdp_entry on XDP with XDP acceleration.
// - Calico eBPF: maps pinned in /sys/fs/bpf/tc/globals as cali_* (service NAT in cali_v4_nat_fe /
//   cali_v6_nat_fe), the links bpfin.cali/bpfout.cali (bpfnatin/bpfnatout in older releases), and
//   programs named calico_*/cali_* on tc ingress of host interfaces.

import type { DatapathTraces, Link } from "../model/state.ts";

interface DatapathObservation {
  readonly links: readonly Pick<Link, "ifname">[];
  readonly datapath: DatapathTraces;
  /** The pools' interfaces: a program there sees the requests before netfilter. */
  readonly interfaces: readonly string[];
}

interface BypassingDatapath {
  readonly name: "Cilium kube-proxy replacement" | "Calico eBPF dataplane";
  /** What on the node shows it, in plain words (names of links, maps, programs). */
  readonly evidence: readonly string[];
  /** What to do instead. */
  readonly remedy: string;
}

const CILIUM_NETDEV = /(^|\s)cil_from_netdev|bpf_netdev|from-netdev|cil_xdp_entry|bpf_xdp/;
const CALICO_PROG = /(^|\s)(calico_|cali_)/;

function list(names: readonly string[], max = 4): string {
  const shown = names.slice(0, max).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

export function detectBypassingDatapaths(o: DatapathObservation): BypassingDatapath[] {
  const found: BypassingDatapath[] = [];
  const linkNames = o.links.map((l) => l.ifname);
  const { pinnedMaps, programs } = o.datapath;

  // Calico: its BPF maps and NAT links exist only in eBPF mode, which always takes over services.
  const caliMaps = pinnedMaps.filter((m) => m.startsWith("cali_"));
  const caliLinks = linkNames.filter((n) => n.endsWith(".cali") || n === "bpfnatin" || n === "bpfnatout");
  const caliProgs = programs.filter((p) => CALICO_PROG.test(p.name));
  if (caliMaps.length > 0 || caliLinks.length > 0 || caliProgs.length > 0) {
    found.push({
      name: "Calico eBPF dataplane",
      evidence: [
        ...(caliLinks.length > 0 ? [`links ${list(caliLinks)}`] : []),
        ...(caliMaps.length > 0 ? [`BPF maps ${list(caliMaps)} pinned in /sys/fs/bpf/tc/globals`] : []),
        ...caliProgs.map((p) => `program ${p.name} on ${p.hook} of ${p.ifname}`),
      ],
      remedy:
        "switch Calico to its iptables or nftables dataplane (Installation spec.calicoNetwork.linuxDataplane: Iptables or Nftables) and run kube-proxy, or leave these networks out of symroute's configuration",
    });
  }

  // Cilium: the CNI alone is fine (kube-proxy still DNATs in netfilter); its service handling on
  // the external interface is not. A netdev program on a pool's interface (or XDP anywhere) shows
  // it directly; with tcx attachments (invisible to `tc filter`) Cilium's service map without any
  // trace of kube-proxy shows that Cilium, not kube-proxy, serves the LB addresses.
  const ciliumLinks = linkNames.filter((n) => n.startsWith("cilium_"));
  const ciliumMaps = pinnedMaps.filter((m) => m.startsWith("cilium_"));
  const netdevProgs = programs.filter(
    (p) => CILIUM_NETDEV.test(p.name) && (p.hook === "xdp" || o.interfaces.includes(p.ifname)),
  );
  const serviceMaps = ciliumMaps.filter((m) => /^cilium_lb[46]_services/.test(m));
  // kube-proxy's traces (read with the datapath when Cilium or Calico shows): none of them next to
  // Cilium's service maps means Cilium, not kube-proxy, serves the LB addresses.
  const kp = o.datapath.kubeProxy;
  const noKubeProxy =
    kp !== undefined && !kp.iptablesChains && !kp.nftablesTable && !linkNames.includes("kube-ipvs0");
  if (netdevProgs.length > 0 || (serviceMaps.length > 0 && ciliumLinks.length > 0 && noKubeProxy)) {
    found.push({
      name: "Cilium kube-proxy replacement",
      evidence: [
        ...netdevProgs.map((p) => `program ${p.name} on ${p.hook} of ${p.ifname}`),
        ...(ciliumLinks.length > 0 ? [`links ${list(ciliumLinks)}`] : []),
        ...(serviceMaps.length > 0
          ? [`service maps ${list(serviceMaps)} pinned in /sys/fs/bpf/tc/globals`]
          : []),
        ...(noKubeProxy ? ["no kube-proxy chains, nft table or kube-ipvs0 link"] : []),
      ],
      remedy:
        "use Cilium's own egress gateway and BPF routing for these addresses, or turn off its kube-proxy replacement (kubeProxyReplacement: false, plus nodePort.enabled: false) and run kube-proxy",
    });
  }
  return found;
}

/** One message for a `not-supported` error: what was found, why symroute cannot work, what to do. */
export function bypassMessage(found: readonly BypassingDatapath[]): {
  message: string;
  details: string[];
  hint: string;
} {
  return {
    message: `${found.map((f) => f.name).join(" and ")} found on this node: it handles LoadBalancer traffic in BPF before netfilter, so symroute's connection marks never see the requests and its rules cannot steer the replies`,
    details: found.flatMap((f) => f.evidence.map((e) => `${f.name}: ${e}`)),
    hint: found.map((f) => f.remedy).join("; or, for the other: "),
  };
}
