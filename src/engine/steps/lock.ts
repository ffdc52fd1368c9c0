// Step 1: one run at a time per network namespace. A dry run changes nothing and takes no lock.

import type { StateStore } from "../ports.ts";
import type { ApplyOptions } from "../types.ts";

/** Takes the namespace's lock; resolves to its release. */
export async function lock(store: StateStore, options: ApplyOptions): Promise<() => Promise<void>> {
  if (options.dryRun === true) return async () => {};
  return store.lock(options.lockWaitMs ?? 30_000);
}
