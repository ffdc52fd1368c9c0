// The kernel tries the rules of one priority in list order, and a rule added later is listed after
// those already there: a rule symroute re-adds (a repair after someone deleted it) goes after its
// kept rules of that priority, not where a fresh apply put it, and `plan` compares rules by key,
// not by place. That changes no packet's route as long as symroute's rules that share a priority
// and lead to different places can never match one packet: the fwmark rules test distinct values
// under one mask, the group gotos distinct group values, method source's rules pools that may not
// overlap, and its exemptions all `lookup main`. These tests hold the planner to that. The one
// exception is a band of fewer than 5 priorities, where the fwmark rules and method source's rules
// share one (docs/config.md, "rulePriorities"; measured with `ip route get ... mark`).

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Rule } from "../../src/model/state.ts";
import { mayOverlap } from "../../src/plan/diff.ts";
import { ruleArgs } from "../../src/render/ip.ts";
import { configFrom as config } from "../support/config.ts";
import { desiredOnArticleNode } from "../support/desired.ts";

/** Where a rule sends a packet it matches. */
const target = (r: Rule): string => `${r.action} ${r.table ?? ""} ${r.goto ?? ""}`;

/** Pairs of symroute's rules at one priority with different targets that one packet can match. */
function orderDependent(rules: readonly Rule[]): string[] {
  const found: string[] = [];
  rules.forEach((a, i) => {
    for (const b of rules.slice(i + 1))
      if (a.family === b.family && a.priority === b.priority && target(a) !== target(b) && mayOverlap(a, b))
        found.push(`${ruleArgs(a).join(" ")} | ${ruleArgs(b).join(" ")}`);
  });
  return found;
}

/** connmark networks (enough for groups of fwmark rules), source networks, dual stack, pod CIDRs. */
function mixed(band: string): string {
  const connmark = Array.from(
    { length: 70 },
    (_, i) =>
      `  - { name: c${i}, addresses: [10.${i}.3.0/24, "2001:db8:${i}::/64"], interface: ext0, gateway: [10.${i}.3.1, "2001:db8:${i}::1"], method: connmark }`,
  );
  const source = Array.from(
    { length: 3 },
    (_, i) =>
      `  - { name: s${i}, addresses: [172.16.${i}.0/24, 172.17.${i}.5/32], interface: ext0, gateway: 172.16.${i}.1, method: source }`,
  );
  return `${band}
podCIDRs: [10.112.0.0/12, 10.128.0.0/12]
networks:
${[...connmark, ...source].join("\n")}
`;
}

test("symroute's rules that share a priority never send one packet two ways (the default band)", () => {
  const desired = desiredOnArticleNode(config(mixed("")));
  const rules = desired.rules;
  // The case is what it says: groups, a skip rule, source rules, exemptions, both families.
  assert.ok(rules.some((r) => r.action === "goto" && r.fwmark !== 0));
  assert.ok(rules.some((r) => r.action === "goto" && r.fwmark === 0));
  assert.ok(rules.some((r) => r.from !== undefined && r.to !== undefined));
  assert.ok(rules.some((r) => r.family === 6));
  assert.ok(rules.length > 150, String(rules.length));
  assert.deepEqual(orderDependent(rules), []);
});

test("in a band of fewer than 5 priorities, fwmark rules and source rules share one: their order counts", () => {
  const desired = desiredOnArticleNode(config(mixed("rulePriorities: { from: 1000, to: 1003 }")));
  const pairs = orderDependent(desired.rules);
  assert.ok(pairs.length > 0);
  for (const pair of pairs)
    assert.match(pair, /fwmark .*\| .*from 172\.1[67]\.|from 172\.1[67]\..*\| .*fwmark/);
});
