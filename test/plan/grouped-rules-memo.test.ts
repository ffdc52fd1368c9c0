// The fwmark rules in groups (groupFwmarkRules, src/plan/desired.ts) keep each rule moved to its
// group per rule object: a network's kept part gives the same rule objects on every plan, and the
// moved rules must then come back as the same objects (their route-rule keys are not built again),
// while the desired state stays exactly what a fresh computation gives, over random sequences of
// configurations large enough for groups.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseConfigTextReusing, type ConfigTextMemo } from "../../src/config/index.ts";
import type { Config, NetworkConfig } from "../../src/config/schema.ts";
import { computeDesired, FWMARK_GROUPS_FROM, type SavedPlanningState } from "../../src/plan/desired.ts";
import type { DesiredState } from "../../src/plan/types.ts";
import type { Rule } from "../../src/model/state.ts";
import { articleNode } from "../support/fake-kernel.ts";

const RUNS = Number(process.env["SYMROUTE_PROPERTY_RUNS"] ?? 40);

/** Networks on ext0 with a gateway (each gets a mark and a fwmark rule), one entry a line. */
function yamlOf(slots: readonly number[], mask: number, band: { from: number; to: number }): string {
  const lines = [
    `marks: { mask: ${mask} }`,
    `rulePriorities: { from: ${band.from}, to: ${band.to} }`,
    "tables: { from: 20000, to: 20999 }",
    "networks:",
  ];
  for (const s of slots)
    lines.push(`  - { name: n${s}, addresses: [10.${s}.3.0/24], interface: ext0, gateway: 10.${s}.3.1 }`);
  return `${lines.join("\n")}\n`;
}

const freshCopy = (config: Config): Config => ({
  ...config,
  networks: config.networks.map((n) => structuredClone(n) as NetworkConfig),
});

function outcome(compute: () => DesiredState): DesiredState | { error: string } {
  try {
    return compute();
  } catch (error) {
    return { error: String(error) };
  }
}

/** The fwmark lookup rules (the grouped ones, at the groups' priorities when grouped). */
const fwmarkLookups = (d: DesiredState): Rule[] =>
  d.rules.filter((r) => r.fwmark !== undefined && r.action === "lookup");

const stepArb = fc.record({
  add: fc.array(fc.integer({ min: 0, max: 119 }), { maxLength: 3 }),
  remove: fc.array(fc.integer({ min: 0, max: 119 }), { maxLength: 3 }),
  // 0x3f00 (63 marks) refuses the larger sets; 0xff and 0xffffff have room for all.
  mask: fc.option(fc.constantFrom(0xff, 0xffffff, 0x3f00), { nil: undefined }),
  // 1000-1008: too narrow for the groups of the larger sets (plan keeps one list and says why).
  band: fc.option(fc.constantFrom({ from: 1000, to: 1999 }, { from: 1000, to: 1008 }), { nil: undefined }),
  keepSaved: fc.boolean(),
});

test("grouped fwmark rules with kept moves equal a fresh computation, step after step", () => {
  let grouped = 0;
  fc.assert(
    fc.property(
      fc.integer({ min: FWMARK_GROUPS_FROM, max: 100 }),
      fc.array(stepArb, { minLength: 1, maxLength: 6 }),
      (initial, steps) => {
        const slots = new Set(Array.from({ length: initial }, (_, i) => i));
        let mask = 0xff;
        let band = { from: 1000, to: 1999 };
        let memo: ConfigTextMemo | undefined;
        let saved: SavedPlanningState | undefined;
        for (const step of steps) {
          for (const s of step.add) slots.add(s);
          for (const s of step.remove) slots.delete(s);
          mask = step.mask ?? mask;
          band = step.band ?? band;
          const read = parseConfigTextReusing(
            yamlOf(
              [...slots].sort((a, b) => a - b),
              mask,
              band,
            ),
            memo,
          );
          if (!read.result.ok) continue;
          memo = read.memo;
          const config = read.result.config;
          const input = {
            node: articleNode(),
            saved,
            firewall: "nftables" as const,
            kubeProxyMode: "iptables" as const,
          };
          const kept = outcome(() => computeDesired({ ...input, config }));
          const fresh = outcome(() => computeDesired({ ...input, config: freshCopy(config) }));
          assert.deepEqual(kept, fresh);
          const again = outcome(() => computeDesired({ ...input, config }));
          assert.deepEqual(again, fresh);
          if ("error" in kept || "error" in again) continue;
          if (kept.ruleSkips?.some((s) => s.groups !== undefined) === true) grouped++;
          if (step.keepSaved) saved = { allocations: kept.allocations, previousSysctls: {} };
        }
      },
    ),
    { numRuns: RUNS },
  );
  assert.ok(grouped > 0, "some steps planned groups");
});

test("a plan of the same network objects gives the same grouped rule objects, and a new mask new ones", () => {
  const read = parseConfigTextReusing(
    yamlOf(
      Array.from({ length: FWMARK_GROUPS_FROM + 10 }, (_, i) => i),
      0xff,
      { from: 1000, to: 1999 },
    ),
  );
  assert.ok(read.result.ok);
  const config = read.result.config;
  const input = {
    node: articleNode(),
    saved: undefined,
    firewall: "nftables" as const,
    kubeProxyMode: "iptables" as const,
  };
  const first = computeDesired({ ...input, config });
  assert.ok(first.ruleSkips?.[0]?.groups !== undefined, "the rules are grouped");
  const second = computeDesired({ ...input, config });
  const a = fwmarkLookups(first);
  const b = fwmarkLookups(second);
  assert.equal(a.length, FWMARK_GROUPS_FROM + 10);
  // Moved to the groups' priorities (1006 on), not at the fwmark rules' own (1001).
  assert.ok(a.every((r) => r.priority >= 1006));
  assert.ok(
    a.every((r, i) => r === b[i]),
    "each grouped rule is the object the plan before made",
  );
  // Another mask: the marks (and so the groups) are the fresh computation's.
  const wider = { ...config, marks: { ...config.marks, mask: 0xffff } };
  const widerKept = computeDesired({ ...input, config: wider });
  assert.deepEqual(widerKept, computeDesired({ ...input, config: freshCopy(wider) }));
});
