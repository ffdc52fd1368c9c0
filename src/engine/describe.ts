// Changes as the lines a person reads: `plan`'s listing, verification's details.

import type { Change } from "../model/change.ts";
import { changeLines } from "../render/ip.ts";
import type { Payloads } from "../render/payloads.ts";
import { counted } from "../model/plural.ts";

/**
 * describeChange of every change, taking the line of a route or rule change from the batch already
 * rendered for the payloads (thousands of changes need not be rendered twice).
 */
export function describeChanges(changes: readonly Change[], payloads: Payloads): string[] {
  // An array by change index, not a Map: one slot per change, no hashing of thousands of keys.
  const rendered: (string | undefined)[] = new Array(changes.length).fill(undefined);
  for (const batch of payloads.ip) {
    const { lines, changeIndex } = batch;
    for (let i = 0; i < lines.length; i++) rendered[changeIndex[i] as number] = lines[i];
  }
  const texts: string[] = new Array(changes.length);
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as Change;
    const line = rendered[i];
    if (line === undefined || (change.kind !== "route" && change.kind !== "rule"))
      texts[i] = describeChange(change);
    else {
      const family = change.kind === "route" ? change.route.family : change.rule.family;
      texts[i] = (family === 6 ? "ip -6 " : "ip ") + line;
    }
  }
  return texts;
}

export function describeChange(change: Change): string {
  switch (change.kind) {
    case "sysctl":
      return `sysctl ${change.name.replaceAll("/", ".")} ${change.from ?? "(absent)"} -> ${change.to}`;
    case "firewall":
      return change.action === "delete"
        ? `firewall ${change.backend}: remove symroute's rules (${change.rules})`
        : `firewall ${change.backend}: replace symroute's rules (${counted(change.rules, "rule")})`;
    case "link":
      return changeLines(change)
        .map((l) => `ip ${l}`)
        .join("; ");
    case "route":
      return `ip${change.route.family === 6 ? " -6" : ""} ${changeLines(change).join("; ")}`;
    case "rule":
      return `ip${change.rule.family === 6 ? " -6" : ""} ${changeLines(change).join("; ")}`;
  }
}
