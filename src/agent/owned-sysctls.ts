// The interfaces whose rp_filter symroute owns, as its state file records them: every sysctl it
// changed keeps its earlier value in `previousSysctls` until symroute gives it back. Besides the
// networks' interfaces that is every other interface it raised when it lowered conf.all (eth0, lo:
// KERNEL-FACTS 5). The kernel monitor's netconf filter keeps their events, so that a change there
// is repaired at once like any other drift, not at the next resync.

import type { SavedState, StateStore } from "../engine/ports.ts";

const RP_FILTER = /^net\/ipv4\/conf\/([^/]+)\/rp_filter$/;

interface OwnedRpFilters {
  /** The engine's state store, unchanged, watched for what it reads and writes. */
  readonly store: StateStore;
  /** Interfaces whose rp_filter the last state read or written records as symroute's. */
  interfaces(): ReadonlySet<string>;
}

export function trackOwnedRpFilters(store: StateStore): OwnedRpFilters {
  let owned: ReadonlySet<string> = new Set();
  const learn = (state: SavedState | undefined): void => {
    owned = new Set(
      Object.keys(state?.previousSysctls ?? {}).flatMap((name) => {
        const ifname = RP_FILTER.exec(name)?.[1];
        return ifname === undefined ? [] : [ifname];
      }),
    );
  };
  return {
    store: {
      get location(): string {
        return store.location;
      },
      async read() {
        const state = await store.read();
        learn(state);
        return state;
      },
      async write(state) {
        await store.write(state);
        learn(state);
      },
      async remove() {
        await store.remove();
        learn(undefined);
      },
      lock: (waitMs) => store.lock(waitMs),
    },
    interfaces: () => owned,
  };
}
