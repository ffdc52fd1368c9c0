// The read cache's unit tests around the in-memory kernel: monitor lines as `ip -ts` stamps them,
// and a cache whose monitors have been listening since long before any read.

import type { Kernel } from "../../../src/engine/ports.ts";
import { ReadCache } from "../../../src/agent/read-cache.ts";
import type { FakeKernel } from "../../support/fake-kernel.ts";

/** The agent's own process id, as nft's generation lines name it. */
export const OWN_PID = 4242;

/** `ip -ts` stamps a line as it does (UTC, microseconds). */
export const stamped = (at: number, event: string): string =>
  `[${new Date(at).toISOString().slice(0, 19)}.${String(Math.round((at % 1000) * 1000)).padStart(6, "0")}] ${event}`;

/**
 * The monitors have shown a line, long before any read (they listen): ip's unless `routing` is
 * false, nft's unless `firewall` is false (an agent just started, its nft monitor silent so far).
 */
export function listening(
  cache: ReadCache,
  monitors: { routing?: boolean; firewall?: boolean } = {},
): ReadCache {
  cache.ownProcess(OWN_PID);
  if (monitors.routing !== false)
    cache.routingLine(stamped(Date.now() - 60_000, "[LINK]1: lo: <LOOPBACK,UP>"));
  if (monitors.firewall !== false) cache.firewallLine(`# new generation 1 by process ${OWN_PID} (nft)`);
  return cache;
}

/** Where `read` took what it read from ("cache" or "kernel"), as the cache noted it in `reads`. */
export async function sourceOf(reads: string[], read: () => Promise<unknown>): Promise<string | undefined> {
  reads.length = 0;
  await read();
  return reads[0];
}

/** A listening cache around `kernel`, the kernel it wraps, and where each read came from. */
export function cached(kernel: FakeKernel): { cache: ReadCache; wrapped: Kernel; reads: string[] } {
  const reads: string[] = [];
  const cache = new ReadCache({
    readSysctl: async (name) => kernel.state.sysctls[name],
    onRead: (from) => reads.push(from),
  });
  listening(cache);
  return { cache, wrapped: cache.wrap(kernel), reads };
}
