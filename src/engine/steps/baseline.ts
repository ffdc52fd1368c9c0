// What a state record can know of the node as it was before symroute. Only the first record, written
// before symroute touches a fresh node, sees that node: a record first written where symroute's
// objects already are (the state file lost, or another --state-dir) cannot know the sysctl values
// symroute changed, nor the VLAN links and iptables tables it created. It says so (`baselineUnknown`),
// and delete then refuses as it does without any state file (unrestorable).

import { SymrouteError } from "../../model/errors.ts";
import type { OwnedFirewall } from "../../model/state.ts";
import type { PlanWarning } from "../../plan/types.ts";
import { managedSysctlsNow } from "../../plan/sysctls.ts";
import type { BaselinePart } from "../ports.ts";
import type { ApplyOptions, RoutingPlan } from "../types.ts";
import { countOwned, finishPlan } from "./plan.ts";
import { counted } from "../../model/plural.ts";

/**
 * The parts of the baseline the record this run writes cannot know: the saved record's, or, with no
 * saved record, every part symroute's objects on the node may have changed already.
 */
export function unknownBaseline(rp: RoutingPlan, observedFirewall: readonly OwnedFirewall[]): BaselinePart[] {
  if (rp.saved !== undefined) return [...(rp.saved.baselineUnknown ?? [])];
  if (countOwned({ ...rp.routing, firewall: observedFirewall }, rp.own) === 0) return [];
  return [
    "previousSysctls",
    ...(rp.routing.links.some((l) => l.kind === "vlan") ? ["createdLinks" as const] : []),
    ...(observedFirewall.some((f) => f.backend === "iptables" && f.ruleKeys.length > 0)
      ? ["iptablesTablesCreated" as const]
      : []),
  ];
}

/**
 * What a delete leaves as it is because the baseline is unknown, one entry each: the sysctls with
 * their values now (dotted), VLAN links, iptables tables. Sysctls the record does know (a later
 * apply changed them) are put back and not listed.
 */
export function unrestorableParts(rp: RoutingPlan): string[] {
  const unknown = rp.saved?.baselineUnknown ?? ["previousSysctls"];
  const known = new Set(Object.keys(rp.saved?.previousSysctls ?? {}).map((n) => n.replaceAll("/", ".")));
  const created = new Set(rp.saved?.createdLinks ?? []);
  return [
    ...(unknown.includes("previousSysctls")
      ? managedSysctlsNow(rp.routing).filter((v) => !known.has(v.slice(0, v.indexOf("="))))
      : []),
    ...(unknown.includes("createdLinks")
      ? rp.routing.links
          .filter((l) => l.kind === "vlan" && !created.has(l.ifname))
          .map((l) => `VLAN link ${l.ifname}`)
      : []),
    ...(unknown.includes("iptablesTablesCreated") ? ["the iptables mangle table(s)"] : []),
  ];
}

/** The apply's warning when the record it writes cannot know the baseline; undefined otherwise. */
export function baselineWarning(rp: RoutingPlan, parts: readonly BaselinePart[]): PlanWarning | undefined {
  if (rp.saved !== undefined || parts.length === 0) return undefined;
  return {
    kind: "baseline-unknown",
    message:
      `symroute's objects are on the node but there is no state file at ${rp.stateFile}: the state ` +
      `an apply writes now records the node's values from before symroute as unknown (${parts.join(", ")}), ` +
      `and delete refuses unless --force`,
    networks: [],
  };
}

/**
 * A delete that finds objects symroute owns but no state file, or a state that does not know the
 * baseline: what symroute changed before cannot be put back (only the lost state knew it). Refused
 * unless forced; forced, the warning that says what stays as it is.
 */
export function unrestorable(
  rp: RoutingPlan,
  observedFirewall: readonly OwnedFirewall[],
  options: ApplyOptions,
): PlanWarning[] {
  if (rp.saved !== undefined && (rp.saved.baselineUnknown ?? []).length === 0) return [];
  const { report } = finishPlan(rp, observedFirewall);
  if (report.changes.length === 0) return [];
  const left = unrestorableParts(rp);
  const where =
    rp.saved === undefined
      ? `no state file at ${rp.stateFile}`
      : `the state file ${rp.stateFile} was written on a node symroute had already changed (its earlier state file lost)`;
  if (options.force !== true) {
    throw new SymrouteError(
      "conflict",
      // Objects, not changes: one change may remove a whole firewall table.
      `found ${counted(report.ownedObjects, "object")} symroute owns but ${where}: the values these sysctls had before symroute cannot be restored`,
      {
        details: left,
        hint:
          rp.saved === undefined
            ? "run delete with the --state-dir (or -c config with the stateDir) that apply used; or add --force to remove the objects and leave these sysctls as they are now"
            : "put back the earlier state file if a backup has it; or add --force to remove the objects and leave these as they are now, then set those sysctls to the node's own values (sysctl --system applies its sysctl configuration files)",
      },
    );
  }
  const sysctls = left.filter((l) => l.includes("="));
  const others = left.filter((l) => !l.includes("="));
  return [
    {
      kind: "baseline-not-restored",
      message:
        `${where}: sysctls left as they are, not restored: ${sysctls.join(", ")}` +
        (others.length === 0 ? "" : `; left in place: ${others.join(", ")}`),
      networks: [],
    },
  ];
}
