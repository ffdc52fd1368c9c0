// The firewall front ends by name, and what the engine asks of them all.

import type { FirewallSpec } from "../../model/firewall.ts";
import type { FirewallBackend, NodeState } from "../../model/state.ts";
import type { FirewallPayload } from "../../render/payloads.ts";
import type { FirewallFrontEnd } from "./front-end.ts";
import { iptablesFrontEnd } from "./iptables.ts";
import { nftablesFrontEnd } from "./nftables.ts";

export type { CreatedObjects, CreatingObjects, FirewallFrontEnd } from "./front-end.ts";

export const FRONT_ENDS: Readonly<Record<FirewallBackend, FirewallFrontEnd>> = {
  nftables: nftablesFrontEnd,
  iptables: iptablesFrontEnd,
};

/** The front end a payload of a plan belongs to. */
export function frontEndOf(payload: FirewallPayload): FirewallFrontEnd {
  const frontEnd = Object.values(FRONT_ENDS).find((f) => f.owns(payload));
  if (frontEnd === undefined) throw new Error(`no firewall front end runs ${payload.tool}`);
  return frontEnd;
}

/**
 * The payloads that bring each of `frontEnds` to `target` (which names the one it is for; the
 * others are emptied: a switch of front end writes both).
 */
export function firewallPayloads(
  target: FirewallSpec | undefined,
  node: NodeState,
  frontEnds: readonly FirewallBackend[],
): FirewallPayload[] {
  return frontEnds.flatMap((name) =>
    FRONT_ENDS[name].render(target?.backend === name ? target : undefined, node),
  );
}
