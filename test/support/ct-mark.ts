// The ct mark e2e tests (test/cli/classify-map and ipset): another component sets a bit of the ct
// mark outside symroute's mask, and UDP flows from the peer reach an address local to the node, so
// that each connection is confirmed and its mark shows in the node's conntrack table.

import { must, type Netns } from "./netns.ts";

// Set on new connections after conntrack (-200) and before symroute's classify (mangle, -150).
export const FOREIGN_BIT = 0x10000000;
const FOREIGN = `table inet other {
  chain p {
    type filter hook prerouting priority -160; policy accept;
    ct state new ct mark set ct mark or ${FOREIGN_BIT}
  }
}
`;

/** The other component's table, and 5.6.7.5 local to the node (as a kube-proxy DNAT target would be), reachable from the peer. */
export function prepareForeignMark(node: Netns): void {
  node.exec(["nft", "-f", "-"], FOREIGN);
  must(["ip", "-n", node.name, "addr", "add", "5.6.7.5/32", "dev", "lo"]);
  must(["ip", "-n", node.peer, "addr", "add", "5.6.7.1/24", "dev", "r-ext0"]);
  const mac = (JSON.parse(node.exec(["ip", "-j", "link", "show", "ext0"]).stdout) as { address: string }[])[0]
    ?.address as string;
  must(["ip", "-n", node.peer, "neigh", "add", "5.6.7.5", "lladdr", mac, "dev", "r-ext0"]);
}

/** One UDP packet from the peer (5.6.7.1) to 5.6.7.5:port: a new connection. */
export function sendFlow(node: Netns, port: number): void {
  must(["ip", "netns", "exec", node.peer, "bash", "-c", `echo x > /dev/udp/5.6.7.5/${port}`]);
}

/** The ct mark of the UDP connection to `port`, with the conntrack listing it was read from. */
export function ctMarkOf(node: Netns, port: number): { mark: number; entries: string } {
  const entries = node.exec([
    "conntrack",
    "-L",
    "-p",
    "udp",
    "--dport",
    String(port),
    "-o",
    "extended",
  ]).stdout;
  return { mark: Number(/ mark=(\d+)/.exec(entries)?.[1]), entries };
}
