// The agent repairs the iptables front end's firewall on nft's events alone (the resync is off):
// a rule removed from a guard chain, a jump of symroute's out of mangle PREROUTING (which nft
// reports by handle only) and the ARP probe table. Before, only events naming SYMROUTE-PRE/-OUT or `inet
// symroute` were kept, and these waited for the periodic resync.

import { strict as assert } from "node:assert";
import { test } from "node:test";
import { createNode, e2eUnavailable, run } from "../support/netns.ts";
import { startNodeAgent, untilAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9473";

const CONFIG = `firewall: iptables
networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;

test(
  "agent (iptables front end): symroute's firewall removed by hand comes back on nft events, without a resync",
  { skip },
  async (t) => {
    const node = createNode(t);
    const inNode = (argv: readonly string[]) => run(["ip", "netns", "exec", node.name, ...argv]);
    const mangle = (chain: string): string => inNode(["iptables", "-t", "mangle", "-S", chain]).stdout;
    const agent = startNodeAgent(t, node, CONFIG, ["--resync-interval", "0"]);
    const within = (what: string, check: () => boolean): Promise<void> => untilAgent(agent, what, check);
    await untilReady(agent, node.name, URL_BASE);

    const guardRule = (): boolean => mangle("SYMROUTE-G-ext0").includes("-j DROP");
    assert.ok(guardRule(), mangle("SYMROUTE-G-ext0"));
    // The source check is the chain's last rule (the pools' exemption and ND come first).
    const guardLines = mangle("SYMROUTE-G-ext0")
      .split("\n")
      .filter((l) => l.startsWith("-A "));
    const dropAt = guardLines.findIndex((l) => l.includes("-j DROP")) + 1;
    assert.equal(inNode(["iptables", "-t", "mangle", "-D", "SYMROUTE-G-ext0", String(dropAt)]).code, 0);
    // No "is gone" check here: the agent may repair it before a listing could show it missing. The
    // deletion succeeded (above); what is asserted is that the rule comes back without a resync.
    await within("the guard's rule to come back", guardRule);

    // The guard's jump out of mangle PREROUTING (each of symroute's rules there is behind its own
    // `-i` or connmark test), deleted by its position.
    const preJump = (): boolean => mangle("PREROUTING").includes("-j SYMROUTE-G-ext0");
    assert.ok(preJump(), mangle("PREROUTING"));
    const preLines = mangle("PREROUTING")
      .split("\n")
      .filter((l) => l.startsWith("-A "));
    const jumpAt = preLines.findIndex((l) => l.endsWith("-j SYMROUTE-G-ext0")) + 1;
    assert.equal(inNode(["iptables", "-t", "mangle", "-D", "PREROUTING", String(jumpAt)]).code, 0);
    await within("the guard's jump from PREROUTING to come back", preJump);

    const probes = (): boolean => inNode(["nft", "list", "table", "arp", "symroute"]).code === 0;
    assert.ok(probes(), "the ARP probe table is there");
    assert.equal(inNode(["nft", "delete", "table", "arp", "symroute"]).code, 0);
    await within("the ARP probe table to come back", probes);
  },
);
