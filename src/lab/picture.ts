// The ASCII picture of a lab topology, with the addresses of the spec (what `lab demo` shows).

import { familiesOf, nodeCountOf, poolOf } from "./spec.ts";
import type { LabSpec } from "./spec.ts";

export function topologyPicture(spec: LabSpec): string {
  const families = familiesOf(spec);
  const join = (pick: (f: (typeof families)[number]) => string) => families.map(pick).join(", ");
  const pools = families.map((f) => poolOf(spec.case, f));
  const lb = pools.map((p) => p.lbAddress).join(", ");
  const lines: string[] = [];
  lines.push(`  client ${join((f) => f.client)}`);
  lines.push("     │");
  lines.push(
    `  router ${join((f) => f.routerClientSide)} (rp_filter=1 on every interface: ignores ARP senders from other subnets${spec.dualStack ? "; IPv6: nft fib uRPF" : ""})`,
  );
  lines.push(
    `     ├── ${join((f) => `${f.router}/${f.nodePrefixlen}`)} ── node eth0 ${join((f) => f.node)}  (management; default route)`,
  );
  if (spec.case >= 3) {
    lines.push(
      `     └── ${join((f) => `${f.routerExternal}/${f.externalPrefixlen}`)} ── node ext0 (no address; stands in for eth0.100)`,
    );
  }
  if (spec.case === 2) {
    lines.push(`  lan ${join((f) => f.lan)} (rp_filter=1) ── node eth1 (no address, no route for the pool)`);
  }
  lines.push(`  node: vpod ${join((f) => f.podGateway)} ── pod ${join((f) => f.pod)} (serves :8080)`);
  lines.push(
    `        vpodc ${join((f) => f.podClientGateway)} ── pod ${join((f) => f.podClient)} (a client pod)`,
  );
  lines.push("        the node itself serves :8081 (host-network backend)");
  if (nodeCountOf(spec) === 2) {
    const shared = ["eth0", ...(spec.case >= 3 ? ["ext0"] : []), ...(spec.case === 2 ? ["eth1"] : [])].join(
      ", ",
    );
    lines.push(
      `  node2 ${join((f) => f.node2)}: ${shared} on the same links (bridges); vpod ${join((f) => f.pod2Gateway)} ── pod ${join((f) => f.pod2)} (serves :8080)`,
    );
  }
  const where = pools[0]?.interface ?? "eth0";
  const speaker =
    where === "eth1"
      ? "the lan host's neighbour entry"
      : `the router's neighbour entry on ${where === "eth0" ? "eth0's link" : "the external link"}`;
  lines.push("  nothing pinned on the node: it resolves its gateways and on-link clients by itself");
  lines.push(
    `  LB ${lb} (pool ${pools.map((p) => p.prefix).join(", ")} on ${where}), answered by ${speaker}`,
  );
  lines.push(
    spec.kubeProxy === "ipvs-like"
      ? "  kube-proxy stand-in: IPVS-like (LB address local on kube-ipvs0; no pod backend: this kernel has no IPVS)"
      : `  kube-proxy stand-in: ${spec.kubeProxy} mode, DNAT LB:8080 -> pod:8080, LB:8081 -> node:8081` +
          (nodeCountOf(spec) === 2 ? ", LB:8082 -> node2's pod:8080 (masqueraded)" : ""),
  );
  return lines.join("\n");
}

export const CASE_TITLES: Readonly<Record<number, string>> = {
  1: "Case 1: the pool is on the node's own subnet (nothing to do)",
  2: "Case 2: the pool is on another link without a gateway (a route is needed)",
  3: "Case 3: the pool is on its own VLAN with its own gateway (replies must go back through it)",
  4: "Case 4: case 3, and pods reach the LB address too",
};
