// The real node, wired for the CLI and the agent.

import { createLinuxKernel } from "../adapters/kernel.ts";
import { createStateFile, DEFAULT_STATE_DIR } from "../adapters/state-file.ts";
import type { EngineDeps } from "../engine/engine.ts";
import type { StateStore } from "../engine/ports.ts";
import type { EarlyRead } from "./early-read.ts";

export interface NodeDepsOptions {
  readonly stateDir?: string;
  /** Root of the sysctl tree (a container mounts the host's at /host/proc/sys). */
  readonly procSys?: string;
  /** Reads (and the lock) a one-shot command started before its modules loaded. */
  readonly early?: EarlyRead;
}

export function createNodeDeps(options: NodeDepsOptions = {}): EngineDeps {
  const store = createStateFile(options.stateDir ?? DEFAULT_STATE_DIR);
  const early = options.early;
  return {
    kernel: createLinuxKernel({
      ...(options.procSys === undefined ? {} : { procSys: options.procSys }),
      ...(early === undefined ? {} : { run: early.run }),
    }),
    store: early?.release === undefined ? store : withHeldLock(store, early.release),
  };
}

/** The store, whose first lock() hands over a lock already held; later ones take it anew. */
function withHeldLock(store: StateStore, release: () => Promise<void>): StateStore {
  let held: (() => Promise<void>) | undefined = release;
  return {
    read: () => store.read(),
    write: (state) => store.write(state),
    remove: () => store.remove(),
    location: store.location,
    lock: async (waitMs) => {
      const handed = held;
      held = undefined;
      return handed ?? store.lock(waitMs);
    },
  };
}
