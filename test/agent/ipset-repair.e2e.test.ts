// The agent repairs the iptables front end's ipsets: a pool's element removed from the classify set
// by hand (no kernel event reports it) is put back by the next resync, and the agent's drift log
// names the firewall it repaired.

import { strict as assert } from "node:assert";
import { test } from "node:test";
import { createNode, e2eUnavailable, must, run } from "../support/netns.ts";
import { PUBLIC_NETWORK_WITH_PODS } from "../support/config.ts";
import { pollUntil, startNodeAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9473";

const CONFIG = `firewall: iptables\n${PUBLIC_NETWORK_WITH_PODS}`;

/** symroute's classify set in the namespace and its elements, as `ipset save` lists them. */
function classifySet(ns: string): { name: string; elements: string[] } | undefined {
  const saved = must(["ip", "netns", "exec", ns, "ipset", "save"]);
  const name = /^create (symroute-c4-[0-9a-f]{8}) /m.exec(saved)?.[1];
  if (name === undefined) return undefined;
  const elements = saved
    .split("\n")
    .filter((l) => l.startsWith(`add ${name} `))
    .map((l) => l.slice(`add ${name} `.length));
  return { name, elements };
}

test(
  "agent (iptables front end): an element removed from a set is put back by the resync",
  { skip },
  async (t) => {
    const node = createNode(t);
    const agent = startNodeAgent(t, node, CONFIG, ["--resync-interval", "1s"]);
    await untilReady(agent, node.name, URL_BASE);
    const set = classifySet(node.name);
    assert.ok(set !== undefined, must(["ip", "netns", "exec", node.name, "ipset", "save"]));
    assert.deepEqual(set.elements, ["1.2.3.0/24,ext0 skbmark 0x1/0xff"]);

    assert.equal(
      run(["ip", "netns", "exec", node.name, "ipset", "del", set.name, "1.2.3.0/24,ext0"]).code,
      0,
    );
    assert.deepEqual(classifySet(node.name)?.elements, [], "the element is gone");
    await pollUntil(
      "the element to come back",
      () => ((classifySet(node.name)?.elements.length ?? 0) === 1 ? true : undefined),
      20_000,
    );
    assert.deepEqual(classifySet(node.name), set);
    await pollUntil("the drift-repair log line naming the iptables firewall", () =>
      agent
        .output()
        .split("\n")
        .filter((l) => l.includes('"drift repaired"'))
        .some((l) => l.includes("firewall iptables"))
        ? true
        : undefined,
    );
  },
);
