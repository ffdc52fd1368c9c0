// kube-proxy's services as the node's own rules have them: which destination (ClusterIP, external or
// load-balancer IP, with protocol and port) is DNAT'ed to which backends. Read by the kernel adapter
// (src/adapters/kube-proxy-parse.ts); doctor and explain simulate with these backends.

import type { Family } from "./address.ts";

export interface ServiceBackend {
  /** Canonical address the destination is DNAT'ed to. */
  readonly address: string;
  /** Undefined when the DNAT keeps the port. */
  readonly port?: number;
}

/** One destination kube-proxy DNATs, and every backend its rules can pick for it. */
export interface DnatService {
  readonly family: Family;
  /** Canonical address the rules match. */
  readonly address: string;
  /** "tcp", "udp", "sctp"; undefined when the rules match any protocol. */
  readonly proto?: string;
  /** Undefined when the rules match any port. */
  readonly port?: number;
  readonly backends: readonly ServiceBackend[];
}

/** What the kube-proxy reader found on the node. */
export interface KubeProxyServices {
  /** Where it looked and what it found there, in words ("iptables nat (IPv4): 12 DNAT targets"). */
  readonly sources: readonly string[];
  readonly services: readonly DnatService[];
}

/** `1.2.3.4:80/tcp`, `[2001:db8::4]:80/tcp`, or the address alone when the rules match any port. */
export function formatServiceAddress(s: Pick<DnatService, "family" | "address" | "proto" | "port">): string {
  const host = s.family === 6 && s.port !== undefined ? `[${s.address}]` : s.address;
  return `${host}${s.port === undefined ? "" : `:${s.port}`}${s.proto === undefined ? "" : `/${s.proto}`}`;
}

export function formatBackend(family: Family, b: ServiceBackend): string {
  if (b.port === undefined) return b.address;
  return family === 6 ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`;
}
