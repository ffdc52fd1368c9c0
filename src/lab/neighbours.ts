// The node's neighbour entries for its next hops on the pool's link: the gateway (cases 3, 4) or the
// on-link client (case 2). On an interface without an address in their subnet the node has to
// resolve them by itself against a router that ignores ARP senders from other subnets (KERNEL-FACTS
// 10); their state (none, INCOMPLETE, FAILED, REACHABLE...) is what the demo shows.

import { familiesOf, poolOf } from "./spec.ts";
import type { LabSpec } from "./spec.ts";
import type { Topology } from "./topology.ts";

interface NextHop {
  readonly family: 4 | 6;
  readonly address: string;
  readonly device: string;
}

export interface NeighbourState extends NextHop {
  /** The kernel's NUD states, e.g. ["REACHABLE"]; empty when there is no entry. */
  readonly states: readonly string[];
}

/** The next hops a node needs on the pool's link; none in case 1 (the node's own subnet). */
export function nextHopsOf(spec: LabSpec): NextHop[] {
  return familiesOf(spec).flatMap((f) => {
    const pool = poolOf(spec.case, f);
    if (pool.gateway !== undefined)
      return [{ family: f.family, address: pool.gateway, device: pool.interface }];
    if (spec.case === 2) return [{ family: f.family, address: f.lan, device: pool.interface }];
    return [];
  });
}

export function parseNeighbours(ipJson: string): { dst: string; dev?: string; state?: string[] }[] {
  return ipJson.trim() === ""
    ? []
    : (JSON.parse(ipJson) as { dst: string; dev?: string; state?: string[] }[]);
}

export async function neighbourStates(
  topology: Topology,
  node: "node" | "node2" = "node",
): Promise<NeighbourState[]> {
  return Promise.all(
    nextHopsOf(topology.spec).map(async (hop) => {
      const listed = await topology.exec(node, [
        "ip",
        `-${hop.family}`,
        "-j",
        "neigh",
        "show",
        "to",
        hop.address,
        "dev",
        hop.device,
      ]);
      const entry = parseNeighbours(listed.stdout).find((e) => e.dst === hop.address);
      return { ...hop, states: entry?.state ?? [] };
    }),
  );
}

/** Neighbour entries pinned by hand (PERMANENT) on a node: the strict lab has none. */
export async function permanentNeighbours(topology: Topology, node: "node" | "node2"): Promise<string[]> {
  const listed = await topology.exec(node, ["ip", "-j", "neigh", "show", "nud", "permanent"]);
  return parseNeighbours(listed.stdout).map((e) => `${e.dst} dev ${e.dev ?? "?"}`);
}

/** Resolved: the kernel has the MAC and uses it (a REACHABLE entry ages into STALE/DELAY/PROBE). */
export const resolved = (n: NeighbourState): boolean =>
  n.states.some((s) => ["REACHABLE", "STALE", "DELAY", "PROBE"].includes(s));

export function formatNeighbour(n: NeighbourState): string {
  return `${n.address} on ${n.device}: ${n.states.length === 0 ? "no entry" : n.states.join(",")}`;
}
