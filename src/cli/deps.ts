// The real node, wired for the CLI and the agent.

import { createLinuxKernel } from "../adapters/kernel.ts";
import { createStateFile, DEFAULT_STATE_DIR } from "../adapters/state-file.ts";
import type { EngineDeps } from "../engine/engine.ts";

export interface NodeDepsOptions {
  readonly stateDir?: string;
}

export function createNodeDeps(options: NodeDepsOptions = {}): EngineDeps {
  return {
    kernel: createLinuxKernel(),
    store: createStateFile(options.stateDir ?? DEFAULT_STATE_DIR),
  };
}
