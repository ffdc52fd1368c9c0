// A network removed while its pool's connections are open, and another added in the same edit:
// the open connections keep the removed network's value in their ct mark. Given that value, the
// new network's restore rule would mark their replies and its table send them out by its gateway
// (ext1 here), silently; the new network takes a value no network held instead (0x3), so they
// leave by main (eth0: the removal's own consequence), and when the removed network comes back it
// takes its value again and their replies are back on its gateway (ext0). Real TCP connection to
// a DNAT'ed LB address, counters on the node's way out. Before the allocator avoided freed values,
// "other" took 0x1 and the replies left by ext1. nftables only: with the iptables front end, the
// guard on ext0 drops the removed pool's incoming packets (its strict source check exempts the
// config's pools only), so no reply is made whatever the marks.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import {
  configDir,
  connect,
  createNode,
  e2eUnavailable,
  ext0Mac,
  must,
  nftCounter,
  startServer,
  type Connection,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-freedmark-");
const CLIENT = "203.0.113.10";
const LB = "1.2.3.4";
const NODE = "192.168.1.10";
const PORT = 8086;
const PUBLIC = "  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }\n";
// Keeps ext0 in use (and its rp_filter lowered): with ext0 left by every network, its strict
// rp_filter back, the client's packets would be dropped on arrival whatever the marks.
const KEEP = "  - { name: keep, addresses: [1.2.6.0/24], interface: ext0, gateway: 1.2.6.1 }\n";
const OTHER = "  - { name: other, addresses: [1.2.5.0/24], interface: ext1, gateway: 1.2.5.1 }\n";

const configWith = (firewall: string, name: string, networks: string): string =>
  writeConfigFile(dir, `${firewall}-${name}.yaml`, `firewall: ${firewall}\nnetworks:\n${networks}`);

/**
 * The article's node with a second external link, ext1 (its peer end r-ext1 holds other's gateway
 * 1.2.5.1); the client and the LB address as in mark-move.e2e.test.ts; rp_filter off on the peer
 * so that replies by any way reach the client; counters of the packets to the client by the
 * interface they leave the node by.
 */
function topology(node: Netns): void {
  must([
    "ip",
    "link",
    "add",
    "ext1",
    "netns",
    node.name,
    "type",
    "veth",
    "peer",
    "name",
    "r-ext1",
    "netns",
    node.peer,
  ]);
  must(["ip", "-n", node.name, "link", "set", "ext1", "up"]);
  const mac = ext0Mac(node);
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      "link set r-ext1 up",
      "addr add 1.2.3.1/24 dev r-ext0",
      "addr add 1.2.6.1/24 dev r-ext0",
      "addr add 1.2.5.1/24 dev r-ext1",
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
    "net.ipv4.conf.r-ext1.rp_filter=0",
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
  counter ext1 {}
  counter eth0 {}
  chain post {
    type filter hook postrouting priority 0; policy accept;
    ip daddr ${CLIENT} oifname "ext0" counter name "ext0"
    ip daddr ${CLIENT} oifname "ext1" counter name "ext1"
    ip daddr ${CLIENT} oifname "eth0" counter name "eth0"
  }
}
`,
  );
  assert.equal(r.code, 0, r.stderr);
}

const WAYS = ["eth0", "ext0", "ext1"] as const;

/** Sends a line on `connection` and says which ways the packets to the client it caused left by. */
async function repliesOf(node: Netns, connection: Connection, line: string): Promise<string> {
  const before = WAYS.map((way) => nftCounter(node, "probe", way));
  assert.equal(await connection.echo(line), line);
  return WAYS.filter((way, i) => nftCounter(node, "probe", way) > (before[i] ?? 0)).join(" and ");
}

const startEchoServer = (t: TestContext, node: Netns): Promise<void> =>
  startServer(
    t,
    node,
    `require("node:net").createServer((s) => s.pipe(s)).listen(${PORT}, "${NODE}", () => console.log("ready"))`,
  );

for (const firewall of ["nftables"]) {
  const BEFORE = configWith(firewall, "public", PUBLIC + KEEP);
  const SWAPPED = configWith(firewall, "other", KEEP + OTHER);
  const BOTH = configWith(firewall, "both", KEEP + OTHER + PUBLIC);
  test(
    `${firewall}: a network added as another is removed does not take its mark: the removed one's open connections do not leave by the new one's gateway`,
    { skip },
    async (t) => {
      const node = createNode(t);
      topology(node);
      await startEchoServer(t, node);
      const applied = node.symroute(["apply", "-c", BEFORE]);
      assert.equal(applied.code, 0, applied.stderr);
      const live = await connect(t, node, { from: CLIENT, to: LB, port: PORT });
      assert.equal(await repliesOf(node, live, "one"), "ext0", "before: by public's gateway");
      assert.equal(live.ctMark(), 0x1);

      const plan = node.symroute(["plan", "-c", SWAPPED, "-o", "json"]);
      assert.equal(plan.code, 2, plan.stderr);
      const planned = JSON.parse(plan.stdout) as {
        networks: { name: string; mark?: number }[];
        warnings: string[];
      };
      assert.deepEqual(
        planned.networks.map((n) => [n.name, n.mark]),
        [
          ["keep", 0x2],
          ["other", 0x3],
        ],
      );
      assert.deepEqual(
        planned.warnings.filter((w) => w.includes("takes mark")),
        [],
      );
      const swapped = node.symroute(["apply", "-c", SWAPPED]);
      assert.equal(swapped.code, 0, swapped.stderr);
      assert.equal(
        await repliesOf(node, live, "two"),
        "eth0",
        "public's open connection: by main, not by other's gateway (ext1)",
      );
      assert.equal(live.ctMark(), 0x1);

      // public comes back: it takes 0x1 again, and its open connection's replies its gateway.
      const back = node.symroute(["apply", "-c", BOTH]);
      assert.equal(back.code, 0, back.stderr);
      assert.equal(await repliesOf(node, live, "three"), "ext0", "public back: by its gateway again");
      const state = node.symroute(["plan", "-c", BOTH, "-o", "json"]);
      assert.equal(state.code, 0, state.stdout + state.stderr);
      assert.deepEqual(
        (JSON.parse(state.stdout) as { networks: { name: string; mark?: number }[] }).networks.map((n) => [
          n.name,
          n.mark,
        ]),
        [
          ["keep", 0x2],
          ["other", 0x3],
          ["public", 0x1],
        ],
      );
    },
  );
}
