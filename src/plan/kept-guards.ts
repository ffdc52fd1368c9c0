// Anti-spoofing guards known from the node when no state says what rp_filter was before symroute.
// Without that record (a lost state file, or symroute's payloads applied by another hand), the
// rp_filter values symroute lowered read as the node's originals: the plan would see nothing lowered
// and take the guard away while rp_filter stays off, leaving the interface with no source check
// at all. symroute's guard rule on the node names the mode it checks, which is the effective
// rp_filter it stands in for: the plan keeps it.

import type { OwnedFirewall, RoutingState } from "../model/state.ts";
import type { SpoofGuard } from "../model/firewall.ts";
import { rpFilterName } from "./sysctls.ts";
import type { DesiredState } from "./types.ts";

/** A guard's source-check rule, by its key: nft's comment, or iptables' `4:` + comment. */
const GUARD_KEY = /^(?:4:)?(\S+) v4 (strict|loose) source check #[0-9a-f]+$/;

/** Effective rp_filter values order as 0 (off) < 2 (loose) < 1 (strict). */
const strength = (value: number): number => (value === 1 ? 2 : value === 2 ? 1 : 0);

/**
 * `desired` with the IPv4 guards symroute has on the node kept where the plan dropped them for
 * want of a record: on an interface it still routes, whose rp_filter the state does not record
 * (neither the interface's nor conf.all) and which would stay weaker than the guard's mode.
 */
export function keepObservedGuards(
  desired: DesiredState,
  observed: readonly OwnedFirewall[],
  previousSysctls: Readonly<Record<string, string>>,
  node: Pick<RoutingState, "sysctls">,
): DesiredState {
  const spec = desired.firewall;
  if (spec === undefined) return desired;
  if (rpFilterName("all") in previousSysctls) return desired;
  const planned = new Set((spec.guards ?? []).filter((g) => g.family === 4).map((g) => g.iif));
  const routed = new Set(
    desired.decisions.filter((d) => d.family === 4 && d.method !== "none").map((d) => d.interface),
  );
  const value = (name: string): number => {
    const n = Number(desired.sysctls[name] ?? node.sysctls[name] ?? "0");
    return Number.isInteger(n) ? n : 0;
  };
  const kept: SpoofGuard[] = [];
  for (const key of observed.flatMap((f) => f.ruleKeys)) {
    const m = GUARD_KEY.exec(key);
    if (m === null) continue;
    const iif = m[1] as string;
    const mode = m[2] as "strict" | "loose";
    if (planned.has(iif) || !routed.has(iif) || rpFilterName(iif) in previousSysctls) continue;
    const effective = Math.max(value(rpFilterName("all")), value(rpFilterName(iif)));
    if (strength(effective) >= strength(mode === "strict" ? 1 : 2)) continue;
    planned.add(iif);
    const exempt = [
      ...new Set(
        desired.decisions
          .filter((d) => d.family === 4 && d.interface === iif)
          .flatMap((d) => d.pools.map((p) => (p.includes("/") ? p : `${p}/32`))),
      ),
    ];
    kept.push({
      family: 4,
      iif,
      mode,
      exempt,
      reason: `symroute's ${mode} source check is on ${iif} and no state records its rp_filter from before symroute: kept, since rp_filter stays lowered; the firewall checks sources instead, except for packets to ${exempt.join(", ")}`,
    });
  }
  if (kept.length === 0) return desired;
  const guards = [...(spec.guards ?? []), ...kept].sort(
    (a, b) => a.family - b.family || (a.iif < b.iif ? -1 : a.iif > b.iif ? 1 : 0),
  );
  return { ...desired, firewall: { ...spec, guards } };
}
