// `agent --cleanup-on-exit` when its state file is gone (issue 17 item 3), end to end: SIGTERM makes
// the agent refuse the clean-up as `delete` does (exit 1, the log names the state file and the
// sysctls it cannot restore, nothing removed); `symroute delete --force` then removes the objects.

import { strict as assert } from "node:assert";
import { rmSync } from "node:fs";
import { test } from "node:test";
import { createNode, e2eUnavailable, must, stateFileOf } from "../support/netns.ts";
import { startNodeAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();

const ownedRules = (ns: string): number =>
  (
    JSON.parse(must(["ip", "netns", "exec", ns, "ip", "-j", "rule", "show"])) as { priority?: number }[]
  ).filter((r) => r.priority !== undefined && r.priority >= 1000 && r.priority <= 1999).length;

test(
  "agent --cleanup-on-exit without its state file: exit 1, logged, nothing removed",
  { skip },
  async (t) => {
    const node = createNode(t);
    const agent = startNodeAgent(
      t,
      node,
      "networks:\n  - name: public\n    addresses: [1.2.3.0/24]\n    interface: ext0\n    gateway: 1.2.3.1\n",
      // No kernel events: the reconcile its own apply's events trigger could write the state file
      // again after the test removed it (seen in CI); nothing else reconciles before the SIGTERM.
      ["--resync-interval", "5m", "--no-kernel-events", "--listen", "127.0.0.1:9479", "--cleanup-on-exit"],
    );
    await untilReady(agent, node.name, "http://127.0.0.1:9479");
    assert.ok(ownedRules(node.name) > 0);
    // The state lives under the state directory, in a folder per network namespace.
    const stateFile = stateFileOf(node);
    rmSync(stateFile);

    agent.child.kill("SIGTERM");
    assert.equal(await agent.exited(15_000), 1, agent.output());
    assert.match(agent.output(), /"msg":"--cleanup-on-exit removed nothing"/);
    assert.match(
      agent.output(),
      /no state file at .*state\.json: the values these sysctls had before symroute cannot be restored/,
    );
    assert.match(agent.output(), /net\.ipv4\.conf\.all\.rp_filter=0/);
    assert.ok(ownedRules(node.name) > 0, "nothing was removed");

    const forced = node.symroute(["delete", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(ownedRules(node.name), 0);
  },
);
