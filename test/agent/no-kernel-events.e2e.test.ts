// `agent --no-kernel-events`: no monitor can prove a read still good, so the agent keeps nothing and
// reads the node as the one-shot CLI does, only what each step needs. Measured through a wrapper of
// `ip` first in the agent's PATH that logs its arguments: the verification after the start's apply
// (IPv4 lines only) reads IPv4 alone; through the read cache it read both families, every time,
// for a next plan that could never use them.

import { strict as assert } from "node:assert";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createNode, e2eUnavailable, must } from "../support/netns.ts";
import { metricValue, nsGet, startNodeAgent, untilReady } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const BASE = "http://127.0.0.1:9481";

test("agent --no-kernel-events reads only the families a step needs", { skip }, async (t) => {
  const node = createNode(t);
  const dir = mkdtempSync(join(tmpdir(), "symroute-ip-log-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, "ip.log");
  const real = must(["sh", "-c", "command -v ip"]).trim();
  writeFileSync(join(dir, "ip"), `#!/bin/sh\necho "$*" >>'${log}'\nexec '${real}' "$@"\n`);
  chmodSync(join(dir, "ip"), 0o755);
  const agent = startNodeAgent(
    t,
    node,
    "networks:\n  - name: public\n    addresses: [1.2.3.0/24]\n    interface: ext0\n    gateway: 1.2.3.1\n",
    // Nothing but the start reconciles: no events, and the resync is 5 minutes away.
    ["--resync-interval", "5m", "--no-kernel-events", "--listen", "127.0.0.1:9481"],
    { PATH: `${dir}:${process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` },
  );
  await untilReady(agent, node.name, BASE);
  const calls = existsSync(log) ? readFileSync(log, "utf8").split("\n") : [];
  const reads = (family: 4 | 6): number => calls.filter((c) => c.startsWith(`-${family} -j `)).length;
  // The plan read both families; the apply wrote IPv4 only; its verification read IPv4 again.
  assert.equal(reads(6), 1, calls.join("\n"));
  assert.equal(reads(4), 2, calls.join("\n"));
  // Nothing is kept, so no read is counted as served from a cache.
  const metrics = nsGet(node.name, `${BASE}/metrics`).body;
  assert.equal(metricValue(metrics, 'symroute_node_reads_total{from="cache"}') ?? 0, 0);
});
