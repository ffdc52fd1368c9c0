// One agent per network namespace: a namespace-scoped lock (src/adapters/namespace-lock.ts).

import { isLock, tryNamespaceLock } from "../adapters/namespace-lock.ts";
import { SymrouteError } from "../model/errors.ts";

export const AGENT_LOCK_NAME = "symroute-agent";

interface AgentLock {
  release(): Promise<void>;
}

export async function acquireAgentLock(name: string = AGENT_LOCK_NAME): Promise<AgentLock> {
  const result = await tryNamespaceLock(name);
  if (isLock(result)) return result;
  throw new SymrouteError(
    "busy",
    `another symroute agent already runs in this network namespace` +
      (result.pid === undefined ? "" : ` (pid ${result.pid}, started ${result.startedAt ?? "?"})`),
    {
      hint: "run one agent per network namespace: stop the other one first (with a DaemonSet, check for a host systemd unit too)",
    },
  );
}
