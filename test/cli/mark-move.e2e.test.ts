// A change of `marks` that moves a network's mark value, under a live pool connection: the
// connection's conntrack entry keeps the old value in its ct mark, so after the move the restore
// side no longer gives its replies the network's mark and they leave by main (eth0, the wrong
// gateway) until the connection closes. Measured here with a real TCP connection to a DNAT'ed LB
// address (a host-network backend, kube-proxy's stand-in in nftables) and counters on the node's
// way out. `plan` warns with the consequence and the next step; `apply` refuses the move unless
// --force, leaving the node and the connection as they were; forced, the connection's replies leave
// by eth0 (the documented consequence) while a new connection's leave by ext0. The same in both
// firewall front ends. The new mask leaves bit 0 out: with nftables the interface's tag is spread
// over the mask like the networks' values (written raw before, it fell outside symroute's bits and
// no new connection was classified: the last step failed).

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import {
  configDir,
  connect,
  type Connection,
  createNode,
  e2eUnavailable,
  ext0Mac,
  must,
  nftCounter,
  startServer,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-markmove-");
const CLIENT = "203.0.113.10";
const LB = "1.2.3.4";
const NODE = "192.168.1.10";
const PORT = 8085;

const configWith = (firewall: string, marks: string): string =>
  writeConfigFile(
    dir,
    `${firewall}-marks-${marks.length}.yaml`,
    `firewall: ${firewall}
${marks}networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
  );

/**
 * The peer: the pool's gateway 1.2.3.1 on the external segment, the client's address, the LB
 * address as a static neighbour (MetalLB's ARP answer). rp_filter off on the peer, so that a reply
 * that leaves the node by the wrong way still reaches the client (the counters on the node tell the
 * ways apart; a strict router would drop it, KERNEL-FACTS 1). On the node: kube-proxy's stand-in
 * DNATs the LB address to the node's own server, and counters count the packets to the client by
 * the interface they leave by.
 */
function topology(node: Netns): void {
  const mac = ext0Mac(node);
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      "addr add 1.2.3.1/24 dev r-ext0",
      `addr add ${CLIENT}/32 dev r-ext0`,
      `neigh replace ${LB} lladdr ${mac} dev r-ext0 nud permanent`,
      `route add ${LB}/32 dev r-ext0 src ${CLIENT}`,
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
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.r-eth0.rp_filter=0",
    "net.ipv4.conf.r-ext0.rp_filter=0",
  ]);
  const r = node.exec(
    ["nft", "-f", "-"],
    `table ip kube-proxy-standin {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${LB} tcp dport ${PORT} dnat to ${NODE}:${PORT}
  }
}
table inet probe {
  counter ext0 {}
  counter eth0 {}
  chain post {
    type filter hook postrouting priority 0; policy accept;
    ip daddr ${CLIENT} oifname "ext0" counter name "ext0"
    ip daddr ${CLIENT} oifname "eth0" counter name "eth0"
  }
}
`,
  );
  assert.equal(r.code, 0, r.stderr);
}

/** Packets to the client that left the node by `oif` so far. */
const repliesBy = (node: Netns, oif: "ext0" | "eth0"): number => nftCounter(node, "probe", oif);

/** A line-echo server in the node (the host-network backend), up until the test ends. */
const startEchoServer = (t: TestContext, node: Netns): Promise<void> =>
  startServer(
    t,
    node,
    `require("node:net").createServer((s) => s.pipe(s)).listen(${PORT}, "${NODE}", () => console.log("ready"))`,
  );

const open = (t: TestContext, node: Netns): Promise<Connection> =>
  connect(t, node, { from: CLIENT, to: LB, port: PORT });

/**
 * Sends a line on `connection` and says which way the packets to the client it caused left by:
 * "ext0", "eth0", or both (the echo, and an ack when the client's own ack is not piggy-backed).
 */
async function repliesOf(node: Netns, connection: Connection, line: string): Promise<string> {
  const [eth0, ext0] = [repliesBy(node, "eth0"), repliesBy(node, "ext0")];
  assert.equal(await connection.echo(line), line);
  const by = [repliesBy(node, "eth0") > eth0 ? "eth0" : "", repliesBy(node, "ext0") > ext0 ? "ext0" : ""];
  return by.filter((b) => b !== "").join(" and ");
}

for (const firewall of ["nftables", "iptables"]) {
  // 0x1, public's value under the default mask 0xff, is outside 0xfe: public moves to 0x2.
  const BEFORE = configWith(firewall, "");
  const MOVED = configWith(firewall, "marks: { mask: 0xfe }\n");
  test(
    `${firewall}: a mark move under a live pool connection: plan warns, apply refuses without --force; forced, its replies leave by main`,
    { skip },
    async (t) => {
      const node = createNode(t);
      topology(node);
      await startEchoServer(t, node);
      const applied = node.symroute(["apply", "-c", BEFORE]);
      assert.equal(applied.code, 0, applied.stderr);

      const live = await open(t, node);
      assert.equal(
        await repliesOf(node, live, "one"),
        "ext0",
        "before the move: by ext0 (the pool\'s table)",
      );
      assert.equal(live.ctMark(), 0x1);

      // plan names the consequence and the next step (exit 2: changes pending).
      const plan = node.symroute(["plan", "-c", MOVED, "-o", "json"]);
      assert.equal(plan.code, 2, plan.stderr);
      const planned = JSON.parse(plan.stdout) as { warnings: string[]; markMoves: unknown };
      const { warnings } = planned;
      assert.deepEqual(planned.markMoves, [{ network: "public", from: 0x1, to: 0x2, table: 20000 }]);
      const warning = warnings.find((w) => w.startsWith('network "public": its mark moves from 0x1 to 0x2'));
      assert.ok(warning, warnings.join("\n"));
      assert.match(warning, /leave by main/);
      assert.match(warning, /conntrack -L -m 0x1\/0xff/);
      assert.match(warning, /apply refuses the move unless --force/);

      // apply refuses (exit 1, conflict), changes nothing: the connection's replies still leave by ext0.
      const dump = node.dump();
      const refused = node.symroute(["apply", "-c", MOVED, "-o", "json"]);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      const error = (
        JSON.parse(refused.stdout) as { error: { kind: string; details: string[]; hint: string } }
      ).error;
      assert.equal(error.kind, "conflict");
      assert.deepEqual(error.details, [
        'network "public": 0x1 -> 0x2; open connections: conntrack -L -m 0x1/0xff',
      ]);
      assert.match(error.hint, /--force/);
      assert.equal(node.dump(), dump, "the refused apply changed nothing");
      assert.equal(await repliesOf(node, live, "two"), "ext0", "after the refusal: still by ext0");

      // Forced: the open connection keeps 0x1, which nothing restores any more: its replies leave by
      // eth0 (main, the wrong gateway); a new connection gets 0x2 and its replies leave by ext0.
      const forced = node.symroute(["apply", "-c", MOVED, "--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(
        await repliesOf(node, live, "three"),
        "eth0",
        "the stranded connection's replies leave by eth0",
      );
      assert.equal(live.ctMark(), 0x1);
      const fresh = await open(t, node);
      assert.equal(await repliesOf(node, fresh, "four"), "ext0", "a new connection's replies leave by ext0");
      assert.equal(fresh.ctMark(), 0x2);
      assert.equal(node.symroute(["plan", "-c", MOVED]).code, 0);
    },
  );
}
