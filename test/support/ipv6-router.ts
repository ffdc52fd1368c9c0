// An IPv6 client behind the router on ext0's segment, for the e2e tests of IPv6 pools: the router
// (the node's peer namespace) is 2001:db8:100::1 on ext0's link, with the client's address on its
// loopback and a static neighbour for the LB address (MetalLB answers in user space: the one
// stand-in). It has no IPv6 address toward eth0: a reply sent that way is lost, as behind a router
// that checks sources. On the node, kube-proxy's stand-in DNATs the LB address to the node's own
// server.

import assert from "node:assert/strict";
import { run, type Netns } from "./netns.ts";

export const IPV6_CLIENT = "2001:db8:ff::10";
export const IPV6_LB = "2001:db8:100::4";
export const IPV6_NODE = "2001:db8:1::10";

export const mustIn = (node: Netns, argv: readonly string[], input?: string): string => {
  const r = node.exec(argv, input);
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

export const inRouter = (node: Netns, argv: readonly string[], input?: string) =>
  run(["ip", "netns", "exec", node.peer, ...argv], { input });

/** Builds the router's side and the DNAT of the LB address's TCP `port` to the node. */
export function ipv6RouterTopology(node: Netns, port: number): void {
  const mac = (JSON.parse(mustIn(node, ["ip", "-j", "link", "show", "ext0"])) as { address: string }[])[0]
    ?.address;
  assert.ok(mac);
  const router = [
    "link set lo up",
    "addr add 2001:db8:100::1/64 dev r-ext0 nodad",
    `addr add ${IPV6_CLIENT}/128 dev lo nodad`,
    `neigh replace ${IPV6_LB} lladdr ${mac} dev r-ext0 nud permanent`,
  ];
  const r = inRouter(node, ["ip", "-6", "-batch", "-"], `${router.join("\n")}\n`);
  assert.equal(r.code, 0, r.stderr);
  mustIn(
    node,
    ["nft", "-f", "-"],
    `table ip6 kube-proxy-standin {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr ${IPV6_LB} tcp dport ${port} dnat to [${IPV6_NODE}]:${port}
  }
}
`,
  );
}

/** Whether the client gets the node server's "ok" from the LB address's `port`. */
export const clientReachesLb = (node: Netns, port: number): boolean =>
  inRouter(node, [
    "curl",
    "-s",
    "--max-time",
    "3",
    "--interface",
    IPV6_CLIENT,
    `http://[${IPV6_LB}]:${port}/`,
  ]).stdout === "ok";
