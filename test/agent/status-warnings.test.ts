// Plan's warnings about a network show in its Kubernetes status entry for the node (status-writer):
// still converged, the warning first in the message, so that `kubectl get srn` shows it; a network
// the warning does not name keeps its message as it was.

import { strict as assert } from "node:assert";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { ApplyReport } from "../../src/engine/engine.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { writeNodeStatuses } from "../../src/agent/status-writer.ts";
import type { NodeStatus } from "../../src/agent/kubernetes/resources.ts";
import type { ClusterSnapshot, KubernetesSource } from "../../src/agent/kubernetes/source.ts";

test("a plan warning naming a network is in that network's status message, first", async () => {
  const written = new Map<string, NodeStatus | undefined>();
  const source = {
    writeStatus: async (network: string, status: NodeStatus | undefined) => void written.set(network, status),
  } as unknown as KubernetesSource;
  const snapshot = {
    networks: [
      { metadata: { name: "public", generation: 1 } },
      { metadata: { name: "other", generation: 1 } },
    ],
  } as unknown as ClusterSnapshot;
  const decision = (name: string) => ({
    name,
    family: 4 as const,
    pools: [],
    interface: "ext0",
    case: "route" as const,
    method: "route" as const,
    reason: "on-link",
  });
  const warning =
    'network "public": IPv6 pools 2001:db8:100::/64 have no IPv6 gateway while IPv4 has 1.2.3.1: ...';
  const report = {
    networks: [decision("public"), decision("other")],
    conflicts: [],
    warnings: [warning],
  } as unknown as ApplyReport;
  await writeNodeStatuses(
    {
      cluster: { source, snapshot, nodeName: "node-a" },
      verdicts: [
        { network: "public", state: "selected", entry: {} },
        { network: "other", state: "selected", entry: {} },
      ],
      refused: new Map(),
      report,
      failure: undefined,
    },
    createMetrics(),
    createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
  );
  assert.equal(written.get("public")?.converged, true);
  assert.equal(written.get("public")?.reason, "Converged");
  assert.equal(written.get("public")?.message, `warning: ${warning}; IPv4 route: on-link`);
  assert.equal(written.get("other")?.message, "IPv4 route: on-link");
});
