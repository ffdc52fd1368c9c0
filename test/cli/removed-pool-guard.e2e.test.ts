// A network removed while its pool's connections are open, on an interface other networks keep:
// the interface stays guarded (its rp_filter stays lowered), and the guard treats the removed
// pool's address like any other address that is not a pool of the interface's. A packet of such a
// connection, from a client whose source is routed back by main (not through ext0), is dropped
// by the strict source check in both firewall front ends, before kube-proxy's DNAT could send it
// on (its reply would leave by main with the LB address as its source: asymmetric, and dropped by
// any upstream router that checks sources). The same as when the interface is left by every
// network: its strict rp_filter is back, and the kernel drops the packet (KERNEL-FACTS 5).
// Counted on the node: the client's packets at ext0's ingress before any guard (a netdev chain at
// priority -600), and those past the guards (prerouting at -140: after nftables' ingress guard and
// iptables' mangle PREROUTING, before nat's DNAT at -100).
// With the client's socket in the router's namespace itself, at the other end of ext0's veth, the
// nftables guard let this connection's packets through (nft `fib` at ingress trusts a packet's
// socket, test/support/pool-connection.ts): iptables dropped them and nftables did not, a
// difference of the test bench, not of the front ends. The client is one routed hop away now.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  configDir,
  createNode,
  e2eUnavailable,
  must,
  nftCounter,
  writeConfigFile,
} from "../support/netns.ts";
import type { Netns } from "../support/netns.ts";
import {
  CLIENT,
  KEEP_ENTRY as KEEP,
  LB,
  openPoolConnection,
  poolConnectionTopology,
  PUBLIC_ENTRY as PUBLIC,
  startEchoServer,
} from "../support/pool-connection.ts";
import { pollUntil } from "../agent/support/agent-process.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-removed-pool-");
const PORT = 8087;

const COUNTERS = `table netdev removed-pool {
  counter arrived { }
  chain in {
    type filter hook ingress device "ext0" priority -600; policy accept;
    ip saddr ${CLIENT} ip daddr ${LB} tcp dport ${PORT} counter name "arrived"
  }
}
table inet removed-pool {
  counter past { }
  chain pre {
    type filter hook prerouting priority -140; policy accept;
    iifname "ext0" ip saddr ${CLIENT} ip daddr ${LB} tcp dport ${PORT} counter name "past"
  }
}
`;

/** What the counter `name` of the test's table `FAMILY removed-pool` counted so far. */
const counterPackets = (node: Netns, family: "netdev" | "inet", name: string): number =>
  nftCounter(node, "removed-pool", name, family);

for (const firewall of ["nftables", "iptables"]) {
  const BEFORE = writeConfigFile(
    dir,
    `${firewall}-both.yaml`,
    `firewall: ${firewall}\nnetworks:\n${PUBLIC}${KEEP}`,
  );
  const AFTER = writeConfigFile(dir, `${firewall}-keep.yaml`, `firewall: ${firewall}\nnetworks:\n${KEEP}`);
  test(
    `${firewall}: a removed pool's packets on an interface still guarded for other pools are dropped by its source check`,
    { skip },
    async (t) => {
      const node = createNode(t);
      poolConnectionTopology(t, node, {
        port: PORT,
        ways: ["eth0", "ext0"],
        peerAddresses: ["1.2.3.1/24 dev r-ext0", "1.2.6.1/24 dev r-ext0"],
      });
      await startEchoServer(t, node, PORT);
      must(["ip", "netns", "exec", node.name, "nft", "-f", "-"], COUNTERS);
      const applied = node.symroute(["apply", "-c", BEFORE]);
      assert.equal(applied.code, 0, applied.stderr);
      const live = await openPoolConnection(t, node, PORT);
      assert.equal(await live.echo("one"), "one", "public's connection works before the removal");

      const removed = node.symroute(["apply", "-c", AFTER, "-o", "json"]);
      assert.equal(removed.code, 0, removed.stderr);
      const plan = JSON.parse(node.symroute(["plan", "-c", AFTER, "-o", "json"]).stdout) as {
        guards: { iif: string; mode: string; exempt: string[] }[];
      };
      assert.deepEqual(
        plan.guards.map((g) => [g.iif, g.mode, g.exempt]),
        [["ext0", "strict", ["1.2.6.0/24"]]],
        "ext0 stays guarded, for keep's pool alone",
      );

      // The line is sent and never echoed: its segment is dropped, and the client sends it again.
      // Once a second copy has arrived, the first has been through the guards long since.
      const arrived = counterPackets(node, "netdev", "arrived");
      const past = counterPackets(node, "inet", "past");
      void live.echo("two").catch(() => undefined);
      await pollUntil(
        "the client's segment and its retransmission at ext0's ingress",
        () => (counterPackets(node, "netdev", "arrived") >= arrived + 2 ? true : undefined),
        10_000,
        20,
      );
      assert.equal(
        counterPackets(node, "inet", "past"),
        past,
        "no packet of the removed pool's connection got past the guard (it would reach kube-proxy's DNAT)",
      );
    },
  );
}
