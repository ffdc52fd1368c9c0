// The lab's spoofing probes: packets the router sends into a node interface with a source that does
// not belong there, and the counters on the node's ingress that prove each one arrived.
//
// The counters live in a table of the lab's own (`table netdev srlab-ingress`, hook ingress at
// priority -600: before rp_filter, before any prerouting chain, before symroute's guard at ingress
// priority -500), so "dropped" can never mean "never sent": a spoof cell holds only when its packet
// was counted on the node's interface and still not delivered.

import { familiesOf, HOST_NETWORK_PORT, POD_PORT, poolOf } from "./spec.ts";
import type { FamilyPlan, Host, LabSpec } from "./spec.ts";

export const INGRESS_TABLE = "srlab-ingress";

export interface SpoofProbe {
  /** Also the name of its counter. */
  readonly name: string;
  readonly family: 4 | 6;
  /** The node interface the packet enters by: eth0 (management) or the pool's. */
  readonly device: "eth0" | "ext0" | "eth1";
  /** The host that sends it: the router, or in case 2 the lan host on the pool's link. */
  readonly sender: Host;
  readonly source: string;
  readonly target: "pod" | "management";
  readonly address: string;
  readonly port: number;
  /** The host whose probe would receive it. */
  readonly receiver: Host;
  /** Who sends the control packet that shows the receiver's socket had its turn, and from where. */
  readonly control: { readonly from: Host; readonly source: string };
}

function probesOf(spec: LabSpec, f: FamilyPlan): SpoofProbe[] {
  const v = f.family === 4 ? "v4" : "v6";
  const management = {
    target: "management",
    address: f.node,
    port: HOST_NETWORK_PORT,
    receiver: "node",
    // From the router's own address on the management link: delivered before and after apply.
    control: { from: "router", source: f.router },
  } as const;
  const probes: SpoofProbe[] = [];
  if (f.spoofSource !== undefined) {
    probes.push({
      name: `eth0-${v}-management`,
      family: f.family,
      device: "eth0",
      sender: "router",
      source: f.spoofSource,
      ...management,
    });
  }
  const pool = poolOf(spec.case, f);
  if (pool.interface !== "eth0") {
    const onPoolLink = {
      family: f.family,
      device: pool.interface,
      sender: spec.case === 2 ? "lan" : "router",
      source: f.externalSpoofSource,
    } as const;
    probes.push(
      {
        name: `${pool.interface}-${v}-pod`,
        ...onPoolLink,
        target: "pod",
        address: f.pod,
        port: POD_PORT,
        receiver: "pod",
        // The node itself reaches its pod whatever symroute does.
        control: { from: "node", source: f.podGateway },
      },
      { name: `${pool.interface}-${v}-management`, ...onPoolLink, ...management },
    );
  }
  return probes;
}

export const spoofProbesOf = (spec: LabSpec): SpoofProbe[] =>
  familiesOf(spec).flatMap((f) => probesOf(spec, f));

/** The node's ingress counters, as `nft -f` input; empty when the spec has no spoof probe. */
export function ingressCountersText(spec: LabSpec): string {
  const probes = spoofProbesOf(spec);
  if (probes.length === 0) return "";
  const devices = [...new Set(probes.map((p) => p.device))];
  return [
    `table netdev ${INGRESS_TABLE} {`,
    ...probes.map((p) => `  counter ${p.name} { }`),
    ...devices.flatMap((d) => [
      `  chain ${d} {`,
      `    type filter hook ingress device "${d}" priority -600; policy accept;`,
      ...probes
        .filter((p) => p.device === d)
        .map((p) => {
          const fam = p.family === 4 ? "ip" : "ip6";
          return `    ${fam} saddr ${p.source} ${fam} daddr ${p.address} udp dport ${p.port} counter name "${p.name}"`;
        }),
      "  }",
    ]),
    "}",
    "",
  ].join("\n");
}

/** Packets counted so far by one probe's counter, from `nft -j list counter`. */
export function parseCounterPackets(nftJson: string, name: string): number {
  const parsed = JSON.parse(nftJson) as { nftables?: { counter?: { name?: string; packets?: number } }[] };
  const counter = (parsed.nftables ?? []).find((i) => i.counter?.name === name)?.counter;
  if (counter?.packets === undefined)
    throw new Error(`no counter ${name} in the node's ${INGRESS_TABLE} table`);
  return counter.packets;
}
