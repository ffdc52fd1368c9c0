// Rules, routes and traces as people read them: the `ip rule` / `ip route` wording.

import { formatHex } from "../model/marks.ts";
import {
  TABLE_DEFAULT,
  TABLE_LOCAL,
  TABLE_MAIN,
  type PortRange,
  type Route,
  type Rule,
} from "../model/state.ts";
import type { Trace } from "./types.ts";

export function tableName(table: number): string {
  if (table === TABLE_LOCAL) return "local";
  if (table === TABLE_MAIN) return "main";
  if (table === TABLE_DEFAULT) return "default";
  return String(table);
}

const range = (r: PortRange): string => (r.start === r.end ? String(r.start) : `${r.start}-${r.end}`);

const PROTO_NAMES: Readonly<Record<number, string>> = {
  1: "icmp",
  6: "tcp",
  17: "udp",
  58: "ipv6-icmp",
  132: "sctp",
};
export const protoName = (n: number): string => PROTO_NAMES[n] ?? String(n);

/** The selector and action part of a rule, as `ip rule show` prints it (without the priority). */
function formatRuleBody(rule: Rule): string {
  const parts: string[] = [];
  if (rule.not === true) parts.push("not");
  parts.push(`from ${rule.from ?? "all"}`);
  if (rule.to !== undefined) parts.push(`to ${rule.to}`);
  if (rule.tos !== undefined) parts.push(`tos ${formatHex(rule.tos)}`);
  if (rule.fwmark !== undefined) {
    const mask = rule.fwmask ?? 0xffffffff;
    parts.push(
      mask === 0xffffffff
        ? `fwmark ${formatHex(rule.fwmark)}`
        : `fwmark ${formatHex(rule.fwmark)}/${formatHex(mask)}`,
    );
  }
  if (rule.iif !== undefined) parts.push(`iif ${rule.iif}`);
  if (rule.oif !== undefined) parts.push(`oif ${rule.oif}`);
  if (rule.uidrange !== undefined) parts.push(`uidrange ${rule.uidrange.start}-${rule.uidrange.end}`);
  if (rule.ipproto !== undefined) parts.push(`ipproto ${protoName(rule.ipproto)}`);
  if (rule.sport !== undefined) parts.push(`sport ${range(rule.sport)}`);
  if (rule.dport !== undefined) parts.push(`dport ${range(rule.dport)}`);
  switch (rule.action) {
    case "lookup":
      parts.push(`lookup ${tableName(rule.table ?? 0)}`);
      break;
    case "goto":
      parts.push(`goto ${rule.goto ?? "?"}`);
      break;
    default:
      parts.push(rule.action);
  }
  if (rule.suppressPrefixlength !== undefined)
    parts.push(`suppress_prefixlength ${rule.suppressPrefixlength}`);
  if (rule.suppressIfgroup !== undefined) parts.push(`suppress_ifgroup ${rule.suppressIfgroup}`);
  return parts.join(" ");
}

export function formatRule(rule: Rule): string {
  return `${rule.priority}: ${formatRuleBody(rule)}`;
}

export function formatRoute(route: Route): string {
  const parts: string[] = [];
  if (route.type !== "unicast") parts.push(route.type);
  parts.push(route.dst);
  if (route.tos !== undefined) parts.push(`tos ${formatHex(route.tos)}`);
  if (route.gateway !== undefined) parts.push(`via ${route.gateway}`);
  if (route.dev !== undefined) parts.push(`dev ${route.dev}`);
  parts.push(`table ${tableName(route.table)}`);
  if (route.metric !== undefined && route.metric !== 0) parts.push(`metric ${route.metric}`);
  if (route.onlink === true) parts.push("onlink");
  return parts.join(" ");
}

const REFUSALS = new Set(["blackhole", "unreachable", "prohibit", "rejected"]);

/** One line: the verdict, as an operator would say it. */
export function formatVerdict(trace: Trace): string {
  const where: string[] = [];
  if (trace.gateway !== undefined) where.push(`via ${trace.gateway}`);
  if (trace.dev !== undefined) where.push(`dev ${trace.dev}`);
  if (trace.table !== undefined) where.push(`table ${tableName(trace.table)}`);
  if (trace.rule !== undefined) where.push(`(rule ${trace.rule.priority})`);
  const head = `${trace.result}${where.length > 0 ? ` ${where.join(" ")}` : ""}`;
  if (trace.result === "unsupported") return `${head}: ${trace.reason ?? "not modelled"}`;
  if (REFUSALS.has(trace.result)) {
    return `${head}${trace.errno === undefined ? "" : ` [${trace.errno}]`}${trace.reason === undefined ? "" : `: ${trace.reason}`}`;
  }
  return head;
}

/** The whole explanation as text lines: every step, then the rp_filter check and the verdict. */
export function formatTrace(trace: Trace): string[] {
  const lines: string[] = [];
  for (const step of trace.steps ?? []) {
    switch (step.stage) {
      case "rule":
        lines.push(`${step.rule ?? `${step.priority ?? "?"}: ?`} -> ${step.reason}`);
        break;
      case "lookup":
        lines.push(
          `    table ${tableName(step.table ?? 0)}: ${step.route ?? ""}${step.route === undefined ? "" : " -> "}${step.reason}`,
        );
        break;
      case "rp_filter":
        lines.push(`rp_filter: ${step.reason}`);
        break;
      case "guard":
        lines.push(`anti-spoofing guard: ${step.reason}`);
        break;
      case "packet":
        lines.push(`packet: ${step.reason}`);
        break;
      case "verdict":
        lines.push(step.reason);
        break;
    }
  }
  lines.push(`verdict: ${formatVerdict(trace)}`);
  return lines;
}
