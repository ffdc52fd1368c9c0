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
import { configDir, createNode, e2eUnavailable, writeConfigFile } from "../support/netns.ts";
import {
  openPoolConnection,
  poolConnectionTopology,
  repliesOf as repliesBy,
  startEchoServer,
} from "../support/pool-connection.ts";
import type { Connection, Netns } from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-markmove-");
const PORT = 8085;
const WAYS = ["eth0", "ext0"];

const configWith = (firewall: string, marks: string): string =>
  writeConfigFile(
    dir,
    `${firewall}-marks-${marks.length}.yaml`,
    `firewall: ${firewall}
${marks}networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
  );

/** The pool's gateway 1.2.3.1 on ext0's segment, the client, the DNAT and the counters. */
const topology = (t: TestContext, node: Netns): void =>
  poolConnectionTopology(t, node, { port: PORT, ways: WAYS, peerAddresses: ["1.2.3.1/24 dev r-ext0"] });

const open = (t: TestContext, node: Netns): Promise<Connection> => openPoolConnection(t, node, PORT);

/** Which way ("ext0", "eth0", or both) the packets to the client a line on `connection` caused left by. */
const repliesOf = (node: Netns, connection: Connection, line: string): Promise<string> =>
  repliesBy(node, WAYS, connection, line);

for (const firewall of ["nftables", "iptables"]) {
  // 0x1, public's value under the default mask 0xff, is outside 0xfe: public moves to 0x2.
  const BEFORE = configWith(firewall, "");
  const MOVED = configWith(firewall, "marks: { mask: 0xfe }\n");
  test(
    `${firewall}: a mark move under a live pool connection: plan warns, apply refuses without --force; forced, its replies leave by main`,
    { skip },
    async (t) => {
      const node = createNode(t);
      topology(t, node);
      await startEchoServer(t, node, PORT);
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
