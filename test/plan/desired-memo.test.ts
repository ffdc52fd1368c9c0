// computeDesired keeps what it made for each network object (src/plan/desired.ts) and the config
// reader keeps the network objects of unchanged entries (toNetworkConfig): the desired state must be
// exactly what a fresh computation gives, over random sequences of configurations, settings, nodes
// and saved allocations in which network objects come back, change and move.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseConfigTextReusing, type ConfigTextMemo } from "../../src/config/index.ts";
import type { Config, NetworkConfig } from "../../src/config/schema.ts";
import { validateConfigObject } from "../../src/config/index.ts";
import { computeDesired, type SavedPlanningState } from "../../src/plan/desired.ts";
import type { DesiredState } from "../../src/plan/types.ts";
import type { RoutingState } from "../../src/model/state.ts";
import { articleNode } from "../support/fake-kernel.ts";

const RUNS = Number(process.env["SYMROUTE_PROPERTY_RUNS"] ?? 150);
const INTERFACES = ["ext0", "ext1"];

const networkSpec = fc.record({
  slot: fc.integer({ min: 0, max: 5 }),
  iface: fc.constantFrom(...INTERFACES),
  v4: fc.boolean(),
  v6: fc.boolean(),
  gateway: fc.boolean(),
  onLink: fc.boolean(),
  method: fc.constantFrom("auto", "auto", "none", "route", "source", "connmark"),
  table: fc.option(fc.integer({ min: 30000, max: 30005 }), { nil: undefined }),
});
type NetworkSpec = typeof networkSpec extends fc.Arbitrary<infer T> ? T : never;

/** One network entry as plain config; the slot gives its name and addresses. */
function entry(n: NetworkSpec): Record<string, unknown> {
  const i = n.slot;
  const addresses: string[] = [];
  const gateway: string[] = [];
  if (n.v4 || !n.v6) {
    // On ext0's subnet (10.9.0.0/16 below, when the node has it) or beyond.
    addresses.push(n.onLink ? `10.9.${i}.0/24` : `100.64.${i}.0/24`);
    if (n.gateway) gateway.push(n.onLink ? `10.9.${i}.1` : `100.64.${i}.1`);
  }
  if (n.v6) {
    addresses.push(`2001:db8:${i}::/64`);
    if (n.gateway) gateway.push(`2001:db8:${i}::1`);
  }
  // Methods that need a gateway get one.
  if ((n.method === "source" || n.method === "connmark") && gateway.length === 0)
    for (const a of addresses) gateway.push(a.includes(":") ? `2001:db8:${i}::1` : `100.64.${i}.1`);
  return {
    name: `net-${i}`,
    addresses,
    interface: n.iface,
    ...(gateway.length > 0 ? { gateway } : {}),
    ...(n.method === "auto" ? {} : { method: n.method }),
    ...(n.table === undefined ? {} : { table: n.table + i * 10 }),
  };
}

const settingsArb = fc.record({
  routeProtocol: fc.constantFrom(201, 202),
  band: fc.constantFrom({ from: 1000, to: 1999 }, { from: 1000, to: 1002 }, { from: 2000, to: 2099 }),
  mask: fc.constantFrom(0xff, 0xffffffff, 0x3f00),
  pods: fc.constantFrom([], ["10.112.0.0/12"], ["10.112.0.0/12", "fd00:112::/56"]),
  kubeProxyMode: fc.constantFrom("iptables", "nftables", "ipvs"),
});

const nodeArb = fc.record({
  // main's default route: through eth0, through ext0 to a pool's gateway, or none.
  mainDefault: fc.constantFrom("eth0", "ext0", "none"),
  ext0Subnet: fc.boolean(),
  ext1Down: fc.boolean(),
});

/** Undefined three times in four. */
function rarely<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: arb, weight: 1 });
}

/** A step changes a few things at a time, so that most network objects come back. */
const stepArb = fc.record({
  edits: fc.array(networkSpec, { maxLength: 2 }),
  removeSlot: rarely(fc.integer({ min: 0, max: 5 })),
  settings: rarely(settingsArb),
  node: rarely(nodeArb),
  keepSaved: fc.boolean(),
});

function nodeFor(n: { mainDefault: string; ext0Subnet: boolean; ext1Down: boolean }): RoutingState {
  const base = articleNode();
  const routes = base.routes.filter((r) => !(r.table === 254 && r.dst === "default"));
  if (n.mainDefault === "eth0") routes.push(...base.routes.filter((r) => r.dst === "default"));
  if (n.mainDefault === "ext0")
    routes.push({
      family: 4,
      table: 254,
      type: "unicast",
      dst: "default",
      gateway: "100.64.1.1",
      dev: "ext0",
      protocol: 3,
      scope: 0,
    });
  const node: RoutingState = {
    ...base,
    links: [...base.links, { ifname: "ext1", ifindex: 4, up: !n.ext1Down, kind: "veth" }],
    addresses: [
      ...base.addresses,
      ...(n.ext0Subnet ? [{ ifname: "ext0", family: 4 as const, local: "10.9.0.5", prefixlen: 16 }] : []),
    ],
    routes,
  };
  return node;
}

/** Block style, one network entry a line (flow-style values are JSON): what the re-read splits. */
function yamlOf(value: Record<string, unknown> & { readonly networks: readonly unknown[] }): string {
  const { networks, ...rest } = value;
  const lines = Object.entries(rest).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
  lines.push(networks.length === 0 ? "networks: []" : "networks:");
  for (const n of networks) lines.push(`  - ${JSON.stringify(n)}`);
  return `${lines.join("\n")}\n`;
}

/** The same configuration with every network a new object: nothing kept can answer. */
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

test("computeDesired with kept network parts equals a fresh computation, step after step", () => {
  let computed = 0;
  let refused = 0;
  let objectsBack = 0;
  fc.assert(
    fc.property(
      fc.array(networkSpec, { maxLength: 6 }),
      settingsArb,
      nodeArb,
      fc.array(stepArb, { minLength: 1, maxLength: 10 }),
      (initial, firstSettings, firstNode, steps) => {
        let memo: ConfigTextMemo | undefined;
        let saved: SavedPlanningState | undefined;
        let before = new Set<NetworkConfig>();
        // Unique names: the later of two specs for one slot wins, as an edit would.
        const bySlot = new Map(initial.map((n) => [n.slot, n]));
        let settings = firstSettings;
        let nodeSpec = firstNode;
        for (const step of steps) {
          for (const edit of step.edits) bySlot.set(edit.slot, edit);
          if (step.removeSlot !== undefined) bySlot.delete(step.removeSlot);
          settings = step.settings ?? settings;
          nodeSpec = step.node ?? nodeSpec;
          const value = {
            routeProtocol: settings.routeProtocol,
            rulePriorities: settings.band,
            marks: { mask: settings.mask },
            podCIDRs: settings.pods,
            tables: { from: 20000, to: 20010 },
            networks: [...bySlot.values()].map(entry),
          };
          // Through the agent's re-read, so that unchanged entries keep their network objects.
          const read = parseConfigTextReusing(yamlOf(value), memo);
          if (!read.result.ok) {
            // A combination the checks refuse (a table twice, overlapping pools): valid by the object path?
            assert.equal(validateConfigObject(value).ok, false);
            continue;
          }
          memo = read.memo;
          const config = read.result.config;
          objectsBack += config.networks.filter((n) => before.has(n)).length;
          before = new Set(config.networks);
          const node = nodeFor(nodeSpec);
          const input = {
            node,
            saved,
            firewall: "nftables" as const,
            kubeProxyMode: settings.kubeProxyMode,
          };
          const kept = outcome(() => computeDesired({ ...input, config }));
          const fresh = outcome(() => computeDesired({ ...input, config: freshCopy(config) }));
          assert.deepEqual(kept, fresh);
          if ("error" in fresh) refused++;
          else computed++;
          // Again with the objects just made: the second ask answers from what the first kept.
          assert.deepEqual(
            outcome(() => computeDesired({ ...input, config })),
            fresh,
          );
          if (step.keepSaved && !("error" in kept))
            saved = { allocations: kept.allocations, previousSysctls: saved?.previousSysctls ?? {} };
        }
      },
    ),
    { numRuns: RUNS },
  );
  // The generator must mostly give plans, not refusals.
  assert.ok(computed > refused, `${computed} plans, ${refused} refused`);
  assert.ok(objectsBack > computed, `${objectsBack} network objects came back in ${computed} plans`);
});

test("the config reader gives unchanged entries' network objects back, and changed ones anew", () => {
  const text = (gateway: string) =>
    `networks:\n  - {name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}\n  - {name: b, addresses: [5.6.7.0/24], interface: ext0, gateway: ${gateway}}\n`;
  const first = parseConfigTextReusing(text("5.6.7.1"));
  const second = parseConfigTextReusing(text("5.6.7.2"), first.memo);
  assert.ok(first.result.ok && second.result.ok);
  if (!first.result.ok || !second.result.ok) return;
  assert.equal(second.result.config.networks[0], first.result.config.networks[0]);
  assert.notEqual(second.result.config.networks[1], first.result.config.networks[1]);
  assert.equal(second.result.config.networks[1]?.gateways[4], "5.6.7.2");
});
