// The real node, wired for the CLI and the agent.

import { createLinuxKernel } from "../adapters/kernel.ts";
import { createStateFile, DEFAULT_STATE_DIR } from "../adapters/state-file.ts";
import type { EngineDeps } from "../engine/engine.ts";

interface NodeDepsOptions {
  readonly stateDir?: string;
  /** Root of the sysctl tree (a container mounts the host's at /host/proc/sys). */
  readonly procSys?: string;
  /** Told the process id of every tool the kernel adapter starts (the agent's read cache). */
  readonly onSpawn?: (pid: number) => void;
  /** The agent: the state file's last read is kept while the file is unchanged (state-file.ts). */
  readonly keepStateReads?: boolean;
}

export function createNodeDeps(options: NodeDepsOptions = {}): EngineDeps {
  return {
    kernel: createLinuxKernel({
      ...(options.procSys === undefined ? {} : { procSys: options.procSys }),
      ...(options.onSpawn === undefined ? {} : { onSpawn: options.onSpawn }),
    }),
    store: createStateFile(options.stateDir ?? DEFAULT_STATE_DIR, {
      keepReads: options.keepStateReads === true,
    }),
  };
}
