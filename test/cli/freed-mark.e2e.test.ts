// A network removed while its pool's connections are open, and another added in the same edit:
// the open connections keep the removed network's value in their ct mark. Given that value, the
// new network's restore rule would mark their replies and its table send them out by its gateway
// (ext1 here), silently; the new network takes a value no network held instead (0x3), so they
// leave by main (eth0: the removal's own consequence), and when the removed network comes back it
// takes its value again and their replies are back on its gateway (ext0). Real TCP connection to
// a DNAT'ed LB address, counters on the node's way out. Before the allocator avoided freed values,
// "other" took 0x1 and the replies left by ext1.
// The node's rp_filter is loose (2, systemd's default), so ext0's guard is loose too and lets the
// removed pool's packets in (their source is routed back, by main): with a strict one they are
// dropped on arrival, in both front ends (removed-pool-guard.e2e.test.ts), and no reply is made.
// The two front ends restore differently: iptables' CONNMARK --restore-mark copies any value under
// the mask into the reply's packet mark, nftables' map only the values of current networks. Their
// replies take the same way all the same, as `ip rule` has a fwmark rule for exactly the current
// networks' values: 0x1 restored by iptables matches none, and the reply is routed by main as
// nftables' unmarked one is. The test counts the replies that carry 0x1 to show both. When the
// mask has no value left that no network held, a new network takes the freed one (plan warns), and
// then both front ends give the removed one's open connections its table and gateway alike.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import {
  configDir,
  createNode,
  e2eUnavailable,
  must,
  nftCounter,
  writeConfigFile,
} from "../support/netns.ts";
import type { Connection, Netns } from "../support/netns.ts";
import {
  CLIENT,
  KEEP_ENTRY as KEEP,
  openPoolConnection,
  poolConnectionTopology,
  PUBLIC_ENTRY as PUBLIC,
  repliesOf as repliesBy,
  startEchoServer,
} from "../support/pool-connection.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-freedmark-");
const PORT = 8086;
const OTHER = "  - { name: other, addresses: [1.2.5.0/24], interface: ext1, gateway: 1.2.5.1 }\n";
// A third network on ext1, for the mask that has no value left that no network held.
const LATE = "  - { name: late, addresses: [1.2.7.0/24], interface: ext1, gateway: 1.2.7.1 }\n";
const FULL_MASK = "marks: { mask: 0x3 }\n";

const configWith = (firewall: string, name: string, marks: string, networks: string): string =>
  writeConfigFile(dir, `${firewall}-${name}.yaml`, `firewall: ${firewall}\n${marks}networks:\n${networks}`);

const WAYS = ["eth0", "ext0", "ext1"];

/**
 * The article's node with a second external link, ext1 (its peer end r-ext1 holds other's gateway
 * 1.2.5.1); the client, the LB address and the counters as in mark-move.e2e.test.ts.
 */
const topology = (t: TestContext, node: Netns): void =>
  poolConnectionTopology(t, node, {
    port: PORT,
    ways: WAYS,
    peerAddresses: [
      "1.2.3.1/24 dev r-ext0",
      "1.2.6.1/24 dev r-ext0",
      "1.2.5.1/24 dev r-ext1",
      "1.2.7.1/24 dev r-ext1",
    ],
  });

/**
 * The node's rp_filter loose (2) on conf.all and the pools' interfaces, as systemd sets it; a
 * counter of the packets to the client that leave with the removed network's value (0x1) in
 * symroute's bits of their packet mark.
 */
function looseNode(node: Netns): void {
  must([
    "ip",
    "netns",
    "exec",
    node.name,
    "sysctl",
    "-qw",
    "net.ipv4.conf.all.rp_filter=2",
    "net.ipv4.conf.ext0.rp_filter=2",
    "net.ipv4.conf.ext1.rp_filter=2",
  ]);
  must(
    ["ip", "netns", "exec", node.name, "nft", "-f", "-"],
    `table inet freed-mark {
  counter marked { }
  chain post {
    type filter hook postrouting priority 0; policy accept;
    ip daddr ${CLIENT} meta mark & 0xff == 0x1 counter name "marked"
  }
}
`,
  );
}

/** Sends a line on `connection` and says which ways the packets to the client it caused left by. */
const repliesOf = (node: Netns, connection: Connection, line: string): Promise<string> =>
  repliesBy(node, WAYS, connection, line);

/**
 * A fresh node (the topology above, loose), `config` applied with public in it, and a client's
 * connection to public's pool open, its replies by public's gateway and its ct mark 0x1.
 */
async function publicConnection(t: TestContext, config: string): Promise<{ node: Netns; live: Connection }> {
  const node = createNode(t);
  topology(t, node);
  looseNode(node);
  await startEchoServer(t, node, PORT);
  const applied = node.symroute(["apply", "-c", config]);
  assert.equal(applied.code, 0, applied.stderr);
  const live = await openPoolConnection(t, node, PORT);
  assert.equal(await repliesOf(node, live, "one"), "ext0", "before: by public's gateway");
  assert.equal(live.ctMark(), 0x1);
  return { node, live };
}

for (const firewall of ["nftables", "iptables"]) {
  const BEFORE = configWith(firewall, "public", "", PUBLIC + KEEP);
  const SWAPPED = configWith(firewall, "other", "", KEEP + OTHER);
  const BOTH = configWith(firewall, "both", "", KEEP + OTHER + PUBLIC);
  test(
    `${firewall}: a network added as another is removed does not take its mark: the removed one's open connections do not leave by the new one's gateway`,
    { skip },
    async (t) => {
      const { node, live } = await publicConnection(t, BEFORE);

      const plan = node.symroute(["plan", "-c", SWAPPED, "-o", "json"]);
      assert.equal(plan.code, 2, plan.stderr);
      const planned = JSON.parse(plan.stdout) as {
        networks: { name: string; mark?: number }[];
        warningDetails: { kind: string }[];
      };
      assert.deepEqual(
        planned.networks.map((n) => [n.name, n.mark]),
        [
          ["keep", 0x2],
          ["other", 0x3],
        ],
      );
      assert.deepEqual(
        planned.warningDetails.filter((w) => w.kind === "mark-reused"),
        [],
      );
      const swapped = node.symroute(["apply", "-c", SWAPPED, "-o", "json"]);
      assert.equal(swapped.code, 0, swapped.stderr);
      const guards = (JSON.parse(swapped.stdout) as { guards: { iif: string; mode: string }[] }).guards;
      assert.deepEqual(
        guards.map((g) => [g.iif, g.mode]),
        [
          ["ext0", "loose"],
          ["ext1", "loose"],
        ],
      );
      const marked = nftCounter(node, "freed-mark", "marked");
      assert.equal(
        await repliesOf(node, live, "two"),
        "eth0",
        "public's open connection: by main, not by other's gateway (ext1)",
      );
      assert.equal(live.ctMark(), 0x1);
      assert.equal(
        nftCounter(node, "freed-mark", "marked") > marked,
        firewall === "iptables",
        "iptables restores 0x1 into the replies' packet mark, nftables restores only current networks' values",
      );

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

  // marks.mask 0x3 holds three values: with keep on 0x2 and other on 0x3, late can only take 0x1,
  // public's. Both front ends then route public's open connection by late's table alike: nftables'
  // map holds 0x1 again, iptables restored it all along, and the rule for 0x1 is late's now.
  const FULL_BEFORE = configWith(firewall, "full-public", FULL_MASK, PUBLIC + KEEP);
  const FULL_SWAPPED = configWith(firewall, "full-late", FULL_MASK, KEEP + OTHER + LATE);
  test(
    `${firewall}: a network that must take a removed one's mark (the mask has no other) takes its open connections' replies, as plan warns`,
    { skip },
    async (t) => {
      const { node, live } = await publicConnection(t, FULL_BEFORE);

      const swapped = node.symroute(["apply", "-c", FULL_SWAPPED, "-o", "json"]);
      assert.equal(swapped.code, 0, swapped.stderr);
      const report = JSON.parse(swapped.stdout) as {
        networks: { name: string; mark?: number }[];
        warnings: string[];
        warningDetails: { kind: string; networks: string[] }[];
      };
      assert.deepEqual(
        report.networks.map((n) => [n.name, n.mark]),
        [
          ["keep", 0x2],
          ["other", 0x3],
          ["late", 0x1],
        ],
      );
      assert.ok(
        report.warnings.some((w) =>
          w.startsWith('network "late" takes mark 0x1, which network "public" held'),
        ),
        report.warnings.join("\n"),
      );
      // About late alone: public is named, not concerned (the agent shows it on late's status).
      assert.deepEqual(
        report.warningDetails.filter((w) => w.kind === "mark-reused").map((w) => w.networks),
        [["late"]],
      );
      const marked = nftCounter(node, "freed-mark", "marked");
      assert.equal(await repliesOf(node, live, "two"), "ext1", "public's open connection: by late's gateway");
      assert.ok(nftCounter(node, "freed-mark", "marked") > marked, "its replies carry 0x1, late's value");
    },
  );
}
