// A live pool connection through the article's node, for tests of what happens to it across a
// change: a client behind the router opens a TCP connection to a LoadBalancer address that
// kube-proxy's stand-in (nftables) DNATs to an echo server on the node, and counters on the node's
// way out tell which interface the replies left by.
// The client has a namespace of its own, one routed hop from the node, as on a real network. A
// client socket in the peer itself, at the other end of ext0's veth, reached the node with its
// socket still on the packet (veth keeps it across namespaces), and on Linux 6.18 nft's `fib` at
// ingress then skips its lookup when that socket's receive ifindex equals the incoming device's
// (nft_fib_can_skip): r-ext0 and ext0 are both index 3, so an established connection's packets
// passed the nftables guard's source check whatever their source, where iptables' rpfilter (in
// prerouting, after ip_rcv has dropped the socket) checked them. A router's forwarding drops it.

import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import {
  addPeerLink,
  connect,
  run,
  ext0Mac,
  must,
  nftCounter,
  startServer,
  type Connection,
  type Netns,
} from "./netns.ts";

export const CLIENT = "203.0.113.10";
/** The router's address on the client's segment. */
const CLIENT_GATEWAY = "203.0.113.1";
export const LB = "1.2.3.4";
const NODE = "192.168.1.10";

/** The network of LB's pool, as an entry of a config's `networks:` (its gateway: peer address 1.2.3.1/24 dev r-ext0). */
export const PUBLIC_ENTRY =
  "  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }\n";
/**
 * A second network on ext0 (its gateway: peer address 1.2.6.1/24 dev r-ext0), which keeps ext0 in
 * use, and its rp_filter lowered, when public is removed: with ext0 left by every network, its
 * strict rp_filter back, the client's packets would be dropped on arrival.
 */
export const KEEP_ENTRY = "  - { name: keep, addresses: [1.2.6.0/24], interface: ext0, gateway: 1.2.6.1 }\n";

export interface PoolConnectionTopology {
  /** The echo server's port (one per test file: the tests of a file may run side by side). */
  readonly port: number;
  /** The node's interfaces whose replies are counted; ext0 and eth0 always exist. */
  readonly ways: readonly string[];
  /** Addresses of the peer's ends, "ADDRESS/LEN dev r-IF" (the pools' gateways). */
  readonly peerAddresses: readonly string[];
}

/** The client's namespace of a node (clientNamespace creates it). */
export const clientNamespaceOf = (node: Netns): string => `${node.peer}c`;

/**
 * The client's namespace: `c0` with the client's address, its default route via the router (the
 * peer's `r-c0`), removed when the test ends.
 */
function clientNamespace(t: TestContext, node: Netns): string {
  const name = clientNamespaceOf(node);
  must(["ip", "netns", "add", name]);
  t.after(() => void run(["ip", "netns", "del", name]));
  must([
    "ip",
    "link",
    "add",
    "c0",
    "netns",
    name,
    "type",
    "veth",
    "peer",
    "name",
    "r-c0",
    "netns",
    node.peer,
  ]);
  must(
    ["ip", "-n", name, "-batch", "-"],
    `link set lo up\nlink set c0 up\naddr add ${CLIENT}/24 dev c0\nroute add default via ${CLIENT_GATEWAY}\n`,
  );
  return name;
}

/**
 * The peer, a router: the gateways on the external segments (links other than ext0 and eth0 in
 * `ways` are created as veth pairs), the client's segment (its own namespace, above), the LB
 * address as a static neighbour (MetalLB's ARP answer). rp_filter off on the peer, so that a reply
 * that leaves the node by the wrong way still reaches the client (the counters tell the ways apart;
 * a strict router would drop it, KERNEL-FACTS 1). On the node: the DNAT of the LB address to the
 * node's own server, and a counter per way of the packets to the client.
 */
export function poolConnectionTopology(t: TestContext, node: Netns, spec: PoolConnectionTopology): void {
  clientNamespace(t, node);
  const added = spec.ways.filter((way) => way !== "ext0" && way !== "eth0");
  for (const link of added) {
    addPeerLink(node, link);
    must(["ip", "-n", node.name, "link", "set", link, "up"]);
  }
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      ...added.map((link) => `link set r-${link} up`),
      ...spec.peerAddresses.map((a) => `addr add ${a}`),
      "link set r-c0 up",
      `addr add ${CLIENT_GATEWAY}/24 dev r-c0`,
      `neigh replace ${LB} lladdr ${ext0Mac(node)} dev r-ext0 nud permanent`,
      `route add ${LB}/32 dev r-ext0`,
      "",
    ].join("\n"),
  );
  must([
    "ip",
    "netns",
    "exec",
    node.peer,
    "sysctl",
    "-qw",
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.r-eth0.rp_filter=0",
    "net.ipv4.conf.r-c0.rp_filter=0",
    ...["ext0", ...added].map((link) => `net.ipv4.conf.r-${link}.rp_filter=0`),
  ]);
  const r = node.exec(
    ["nft", "-f", "-"],
    `table ip kube-proxy-standin {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${LB} tcp dport ${spec.port} dnat to ${NODE}:${spec.port}
  }
}
table inet probe {
${spec.ways.map((way) => `  counter ${way} {}`).join("\n")}
  chain post {
    type filter hook postrouting priority 0; policy accept;
${spec.ways.map((way) => `    ip daddr ${CLIENT} oifname "${way}" counter name "${way}"`).join("\n")}
  }
}
`,
  );
  assert.equal(r.code, 0, r.stderr);
}

/** A line-echo server in the node (the host-network backend), up until the test ends. */
export const startEchoServer = (t: TestContext, node: Netns, port: number): Promise<void> =>
  startServer(
    t,
    node,
    `require("node:net").createServer((s) => s.pipe(s)).listen(${port}, "${NODE}", () => console.log("ready"))`,
  );

/** The client's connection to the LB address. */
export const openPoolConnection = (t: TestContext, node: Netns, port: number): Promise<Connection> =>
  connect(t, node, { from: CLIENT, to: LB, port, namespace: clientNamespaceOf(node) });

/**
 * Sends a line on `connection` and says which ways (of `ways`, in that order) the packets to the
 * client it caused left by: one, or several joined by " and " (the echo, and an ack when the
 * client's own ack is not piggy-backed).
 */
export async function repliesOf(
  node: Netns,
  ways: readonly string[],
  connection: Connection,
  line: string,
): Promise<string> {
  const before = ways.map((way) => nftCounter(node, "probe", way));
  assert.equal(await connection.echo(line), line);
  return ways.filter((way, i) => nftCounter(node, "probe", way) > (before[i] ?? 0)).join(" and ");
}
