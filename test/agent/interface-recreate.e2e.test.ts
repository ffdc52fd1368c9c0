// A pool's interface deleted and created again under a running agent (a VLAN interface that the
// network manager re-creates, a veth recreated), with the periodic resync off so that only kernel
// events drive the repair. symroute hooks that interface twice in `table netdev symroute`: the
// anti-spoofing guard (guard_IF) and the classification tag (tag_IF). Measured on this kernel
// (Linux 6.18): the base chains stay, listed with their device, while the device is gone, and hook
// the new device of that name; nft's monitor prints nothing of either. The device's routes in the
// network's table go with it, and the new device takes conf.default's rp_filter (strict, which
// drops every request on an interface without an address, KERNEL-FACTS 5): the agent puts both
// back on the link's events. Proved with traffic: a client's connection to a pool address is
// classified at ingress again and its reply leaves by the pool's table (ext0), and a packet with a
// source not routed back through ext0 is dropped by the guard, not delivered.

import { strict as assert } from "node:assert";
import { test } from "node:test";
import { createNode, e2eUnavailable, ext0Mac, must, nftCounter, type Netns } from "../support/netns.ts";
import { backoffDelay } from "../../src/agent/backoff.ts";
import { startNodeAgent, untilAgent, untilReady, type AgentProcess } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9473";
const CLIENT = "203.0.113.10";
const POOL_ADDRESS = "1.2.3.4";
/** A source that the node's main table routes back through eth0, not ext0: the guard drops it on ext0. */
const STRAY = "192.0.2.77";
const NODE_OTHER = "198.51.100.5";

const CONFIG = `networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;

/** The peer's side of ext0: the gateway, the client, the stray source, and routes to the node's addresses through it. */
function peerSide(node: Netns): void {
  const mac = ext0Mac(node);
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      "link set r-ext0 up",
      "addr add 1.2.3.1/24 dev r-ext0",
      `addr add ${CLIENT}/32 dev r-ext0`,
      `addr add ${STRAY}/32 dev r-ext0`,
      `neigh replace ${POOL_ADDRESS} lladdr ${mac} dev r-ext0 nud permanent`,
      `neigh replace ${NODE_OTHER} lladdr ${mac} dev r-ext0 nud permanent`,
      `route replace ${POOL_ADDRESS}/32 dev r-ext0 src ${CLIENT}`,
      `route replace ${NODE_OTHER}/32 dev r-ext0 src ${STRAY}`,
      "",
    ].join("\n"),
  );
}

function topology(node: Netns): void {
  must(
    ["ip", "-n", node.name, "-batch", "-"],
    `addr add ${POOL_ADDRESS}/32 dev lo\naddr add ${NODE_OTHER}/32 dev lo\n`,
  );
  peerSide(node);
  must(
    ["ip", "netns", "exec", node.name, "nft", "-f", "-"],
    `table inet probe {
  counter reply_ext0 {}
  counter reply_eth0 {}
  counter stray_in {}
  chain post {
    type filter hook postrouting priority 0; policy accept;
    ip daddr ${CLIENT} oifname "ext0" counter name "reply_ext0"
    ip daddr ${CLIENT} oifname "eth0" counter name "reply_eth0"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr ${STRAY} udp dport 9999 counter name "stray_in"
  }
}
`,
  );
}

const counter = (node: Netns, name: string): number => nftCounter(node, "probe", name);

/**
 * A TCP connection from the client to a closed port of the pool address; the node's reset is the
 * reply. Whether a reply left by ext0 (the pool's table: classified at ingress, restored, routed).
 */
function replyByExt0(node: Netns): boolean {
  const before = counter(node, "reply_ext0");
  must([
    "ip",
    "netns",
    "exec",
    node.peer,
    "bash",
    "-c",
    // Bounded so that a lost reset (rp_filter, or a reply by eth0 that the peer ignores) ends the attempt.
    `(timeout 2 bash -c 'exec 3<>/dev/tcp/${POOL_ADDRESS}/4100') >/dev/null 2>&1 || true`,
  ]);
  return counter(node, "reply_ext0") > before;
}

/** Whether a UDP datagram from the stray source into ext0 reached the node (the guard should drop it). */
function strayDelivered(node: Netns): boolean {
  const before = counter(node, "stray_in");
  must(["ip", "netns", "exec", node.peer, "bash", "-c", `echo x > /dev/udp/${NODE_OTHER}/9999`]);
  return counter(node, "stray_in") > before;
}

/** Creates ext0 again (both ends) as a network manager would: the link, its address (if any), up. */
function recreateExt0(node: Netns, address?: string): void {
  must([
    "ip",
    "link",
    "add",
    "ext0",
    "netns",
    node.name,
    "type",
    "veth",
    "peer",
    "name",
    "r-ext0",
    "netns",
    node.peer,
  ]);
  if (address !== undefined) must(["ip", "-n", node.name, "addr", "add", address, "dev", "ext0"]);
  must(["ip", "-n", node.name, "link", "set", "ext0", "up"]);
  peerSide(node);
}

const netdevChains = (node: Netns): string =>
  must(["ip", "netns", "exec", node.name, "nft", "list", "table", "netdev", "symroute"]);

for (const address of [undefined, "1.2.3.9/24"] as const) {
  test(
    `agent: a pool's interface ${address === undefined ? "without an address" : `with ${address}`} deleted and created again is classified and guarded again, on kernel events alone`,
    { skip },
    async (t) => {
      const node = createNode(t);
      if (address !== undefined) must(["ip", "-n", node.name, "addr", "add", address, "dev", "ext0"]);
      topology(node);
      const agent = startNodeAgent(t, node, CONFIG, ["--resync-interval", "0"]);
      await untilReady(agent, node.name, URL_BASE);
      await untilAgent(agent, "a reply by the pool's table", () => replyByExt0(node));
      assert.equal(strayDelivered(node), false, "the guard drops the stray source on ext0");
      const rpFilter = (): string =>
        must(["ip", "netns", "exec", node.name, "sysctl", "-n", "net.ipv4.conf.ext0.rp_filter"]).trim();
      const rpFilters = (): string =>
        must(["ip", "netns", "exec", node.name, "sysctl", "-a"])
          .split("\n")
          .filter((l) => l.includes(".rp_filter = "))
          .join("\n");
      const lowered = rpFilter();
      const converged = rpFilters();

      must(["ip", "-n", node.name, "link", "del", "ext0"]);
      // The kernel keeps both base chains, with their device, while ext0 is gone (measured).
      assert.match(netdevChains(node), /chain guard_ext0 \{\n\s+type filter hook ingress device "ext0"/);
      assert.match(netdevChains(node), /chain tag_ext0 \{\n\s+type filter hook ingress device "ext0"/);
      recreateExt0(node, address);

      await untilAgent(agent, "a reply by the pool's table after ext0 came back", () => replyByExt0(node));
      assert.equal(strayDelivered(node), false, "the guard drops the stray source on the new ext0");
      // The agent may have seen ext0 before its address came (then it planned for an interface without
      // one): it settles where it was.
      await untilAgent(agent, "every rp_filter as before", () => rpFilters() === converged);
      assert.equal(rpFilter(), lowered, "the new ext0's rp_filter (strict, from conf.default) put back");
      const routes = must(["ip", "-n", node.name, "-j", "route", "show", "table", "20000"]);
      assert.match(routes, /"dst":"default","gateway":"1.2.3.1","dev":"ext0"/);
    },
  );
}

interface LogLine {
  readonly time: string;
  readonly msg: string;
  readonly kind?: string;
}
const logLines = (text: string): LogLine[] =>
  text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);

const failuresOf = (agent: AgentProcess): LogLine[] =>
  logLines(agent.output()).filter((l) => l.msg === "reconcile failed" && l.kind === "dependency");

test(
  "agent: a pool's interface back after the failures' backoff grew is repaired on its event, not at the next retry",
  { skip },
  async (t) => {
    const node = createNode(t);
    topology(node);
    const agent = startNodeAgent(t, node, CONFIG, ["--resync-interval", "0"]);
    await untilReady(agent, node.name, URL_BASE);
    must(["ip", "-n", node.name, "link", "del", "ext0"]);
    // Five failed reconciles (interface missing): the next retry is 4 s after the fifth.
    await untilAgent(agent, "five failed reconciles", () => failuresOf(agent).length >= 5);
    const before = agent.output();
    const failures = failuresOf(agent);
    recreateExt0(node);
    await untilAgent(agent, "a reply by the pool's table after ext0 came back", () => replyByExt0(node));
    const last = failures.at(-1) as LogLine;
    const repairLine = (): LogLine | undefined =>
      logLines(agent.output().slice(before.length)).find(
        (l) => l.msg === "drift repaired" || l.msg === "applied",
      );
    // Log lines come out after the fact: wait for it.
    await untilAgent(agent, "the repair's log line", () => repairLine() !== undefined);
    const repaired = repairLine();
    assert.ok(repaired, agent.output());
    // The agent's own clock: without the link event cutting the backoff short, the repair could not
    // come before the retry it scheduled after its last failure.
    const waited = Date.parse(repaired.time) - Date.parse(last.time);
    assert.ok(
      waited < backoffDelay(failures.length),
      `repaired ${waited} ms after the last failure; the retry was due after ${backoffDelay(failures.length)} ms`,
    );
  },
);

test(
  "agent: a pool's interface set down stays converged (its routes left out) and gets its routes back when it is up",
  { skip },
  async (t) => {
    const node = createNode(t);
    topology(node);
    const agent = startNodeAgent(t, node, CONFIG, ["--resync-interval", "0"]);
    await untilReady(agent, node.name, URL_BASE);
    await untilAgent(agent, "a reply by the pool's table", () => replyByExt0(node));
    const table = (): string => must(["ip", "-n", node.name, "-j", "route", "show", "table", "20000"]);
    must(["ip", "-n", node.name, "link", "set", "ext0", "down"]);
    // The kernel deleted the routes through ext0; the agent plans none while it is down and stays ready.
    assert.equal(table().trim(), "[]");
    await untilAgent(agent, "the down interface's warning", () =>
      agent.output().includes("is down: requests cannot arrive"),
    );
    await untilReady(agent, node.name, URL_BASE);
    must(["ip", "-n", node.name, "link", "set", "ext0", "up"]);
    await untilAgent(agent, "a reply by the pool's table after ext0 came up", () => replyByExt0(node));
    assert.match(table(), /"dst":"default","gateway":"1.2.3.1","dev":"ext0"/);
  },
);
