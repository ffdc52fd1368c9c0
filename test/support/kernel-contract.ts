// One contract every Kernel implementation passes: the in-memory fake in unit tests, the real
// kernel inside a network namespace in end-to-end tests (after Hono's shared router suite).
// The node it starts from: eth0 192.168.1.10/24 with default via 192.168.1.1, ext0 without an
// address, conf.all.rp_filter 1.

import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchError, type Kernel } from "../../src/engine/ports.ts";
import { SYSCTLS_TO_READ } from "../../src/plan/sysctls.ts";
import { IPSET_KEY_PREFIX, firewallRuleKeys, ipsetsOf } from "../../src/model/firewall.ts";
import { renderIptables, renderNft } from "../../src/render/firewall-scripts.ts";
import { firewallPayloads, frontEndOf } from "../../src/engine/firewall/index.ts";
import type { FirewallSpec } from "../../src/model/firewall.ts";
import type { FirewallBackend } from "../../src/model/state.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

/** The firewall the contract's cases start from (the failure cases too). */
export const SPEC: FirewallSpec = {
  backend: "nftables",
  mask: 0xff,
  entries: [
    { network: "public", family: 4, iif: "ext0", pools: ["1.2.3.0/24"], value: 1 },
    { network: "public", family: 6, iif: "ext0", pools: ["2001:db8:100::/64"], value: 1 },
  ],
};

/** SPEC with anti-spoofing guards (both families, both modes) and ARP probes. */
const GUARDED: FirewallSpec = {
  ...SPEC,
  guards: [
    { family: 4, iif: "ext0", mode: "strict", exempt: ["1.2.3.0/24"], reason: "r" },
    { family: 6, iif: "ext0", mode: "strict", exempt: ["2001:db8:100::/64"], reason: "r" },
    { family: 4, iif: "eth0", mode: "loose", exempt: [], reason: "r" },
  ],
  arpProbes: [{ oif: "ext0", targets: ["1.2.3.1/32", "5.6.7.0/24"], reason: "r" }],
};

/** What the engine does for one front end: payloads from the node's keys, run in order. */
async function converge(kernel: Kernel, spec: FirewallSpec | undefined, backend: FirewallBackend) {
  const node = await kernel.readNode({ ...SYSCTLS_TO_READ, firewalls: [backend] });
  for (const p of firewallPayloads(spec, node, [backend])) await frontEndOf(p).run(kernel, p);
}

export function kernelContract(name: string, makeKernel: () => Promise<Kernel>): void {
  const read = (k: Kernel) => k.readNode({ ...SYSCTLS_TO_READ, firewalls: ["nftables", "iptables"] });

  test(`${name}: reads links, addresses, main's default route and the default rules`, async () => {
    const node = await read(await makeKernel());
    const names = node.links.map((l) => l.ifname);
    assert.ok(names.includes("eth0") && names.includes("ext0"), names.join(","));
    assert.ok(
      node.addresses.some((a) => a.ifname === "eth0" && a.local === "192.168.1.10" && a.prefixlen === 24),
    );
    assert.ok(
      node.routes.some(
        (r) =>
          r.family === 4 &&
          r.table === 254 &&
          r.dst === "default" &&
          r.gateway === "192.168.1.1" &&
          r.dev === "eth0",
      ),
    );
    assert.deepEqual(
      node.rules.filter((r) => r.family === 4).map((r) => [r.priority, r.table]),
      [
        [0, 255],
        [32766, 254],
        [32767, 253],
      ],
    );
    assert.equal(node.sysctls["net/ipv4/conf/all/rp_filter"], "1");
    assert.ok("net/ipv4/conf/ext0/rp_filter" in node.sysctls);
  });

  test(`${name}: what a batch adds reads back as the same model objects`, async () => {
    const kernel = await makeKernel();
    await kernel.runIpBatch(4, [
      "route add 1.2.3.0/24 dev ext0 table 20000 proto 201 scope 253",
      "route add default via 1.2.3.1 dev ext0 table 20000 proto 201 scope 0",
      "rule add priority 1001 fwmark 0x1/0xff lookup 20000 proto 201",
    ]);
    await kernel.runIpBatch(6, [
      "route add 2001:db8:100::/64 dev ext0 table 20000 proto 201 scope 0 metric 1024",
      "rule add priority 1001 fwmark 0x1/0xff lookup 20000 proto 201",
    ]);
    const node = await read(kernel);
    const sorted = <T>(xs: readonly T[]): T[] =>
      [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    const canon = <T extends object>(x: T): T =>
      Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) as T;
    assert.deepEqual(
      sorted(node.routes.filter((r) => r.table === 20000).map(canon)),
      sorted(
        [
          {
            family: 4,
            table: 20000,
            type: "unicast",
            dst: "default",
            gateway: "1.2.3.1",
            dev: "ext0",
            protocol: 201,
            scope: 0,
          },
          {
            family: 4,
            table: 20000,
            type: "unicast",
            dst: "1.2.3.0/24",
            dev: "ext0",
            protocol: 201,
            scope: 253,
          },
          {
            family: 6,
            table: 20000,
            type: "unicast",
            dst: "2001:db8:100::/64",
            dev: "ext0",
            metric: 1024,
            protocol: 201,
            scope: 0,
          },
        ].map(canon),
      ),
    );
    for (const family of [4, 6] as const) {
      assert.deepEqual(
        node.rules.filter((r) => r.family === family && r.priority === 1001),
        [{ family, priority: 1001, fwmark: 1, fwmask: 0xff, action: "lookup", table: 20000, protocol: 201 }],
      );
    }
  });

  test(`${name}: a goto rule and its nop read back; a goto to a missing priority is kept, a backward one refused`, async () => {
    const kernel = await makeKernel();
    for (const family of [4, 6] as const) {
      // The skip symroute renders: the target does not exist yet when the goto is added.
      await kernel.runIpBatch(family, [
        "rule add priority 1000 fwmark 0x0/0xff goto 1002 proto 201",
        "rule add priority 1002 nop proto 201",
        "rule add priority 1003 fwmark 0x0/0xffffffff goto 1010 proto 201",
      ]);
      await assert.rejects(
        kernel.runIpBatch(family, ["rule add priority 1005 goto 1004 proto 201"]),
        (e: unknown) =>
          isSymrouteError(e) && e.details.some((d) => d.includes("rule add priority 1005 goto 1004")),
      );
    }
    const node = await read(kernel);
    for (const family of [4, 6] as const) {
      assert.deepEqual(
        node.rules.filter((r) => r.family === family && r.priority >= 1000 && r.priority < 1010),
        [
          { family, priority: 1000, fwmark: 0, fwmask: 0xff, action: "goto", goto: 1002, protocol: 201 },
          { family, priority: 1002, action: "nop", protocol: 201 },
          // An all-ones mask is listed as none; the goto to a priority without a rule stays.
          { family, priority: 1003, fwmark: 0, action: "goto", goto: 1010, protocol: 201 },
        ],
      );
    }
  });

  test(`${name}: rules that differ only by protocol coexist, and a del with a protocol takes its own; a route is replaced under another protocol in place`, async () => {
    const kernel = await makeKernel();
    // A move of routeProtocol: the rule under the new number first, then the old one deleted; the
    // route replaced (its identity leaves the protocol out).
    await kernel.runIpBatch(4, [
      "route add 1.2.3.0/24 dev ext0 table 20001 proto 201 scope 253",
      "rule add priority 1001 fwmark 0x1/0xff lookup 20001 proto 201",
      "rule add priority 1001 fwmark 0x1/0xff lookup 20001 proto 202",
    ]);
    await assert.rejects(
      kernel.runIpBatch(4, ["rule add priority 1001 fwmark 0x1/0xff lookup 20001 proto 202"]),
      (e: unknown) => isSymrouteError(e),
    );
    const both = await read(kernel);
    assert.deepEqual(
      both.rules.filter((r) => r.priority === 1001).map((r) => r.protocol),
      [201, 202],
    );
    await kernel.runIpBatch(4, [
      "route replace 1.2.3.0/24 dev ext0 table 20001 proto 202 scope 253",
      "rule del priority 1001 fwmark 0x1/0xff lookup 20001 proto 201",
    ]);
    const node = await read(kernel);
    assert.deepEqual(
      node.rules.filter((r) => r.priority === 1001).map((r) => r.protocol),
      [202],
    );
    assert.deepEqual(
      node.routes.filter((r) => r.table === 20001).map((r) => [r.dst, r.protocol]),
      [["1.2.3.0/24", 202]],
    );
  });

  test(`${name}: a failing batch line is named, and the lines before it stay applied`, async () => {
    const kernel = await makeKernel();
    await assert.rejects(
      kernel.runIpBatch(4, [
        "route add 1.2.3.0/24 dev ext0 table 20001 proto 201 scope 253",
        "route add 5.6.7.0/24 dev nope0 table 20001",
      ]),
      (e: unknown) =>
        e instanceof BatchError &&
        e.tool === "ip" &&
        e.failedLine === 2 &&
        e.details.some((d) => d.startsWith("failing line 2: route add 5.6.7.0/24 dev nope0")),
    );
    const node = await read(kernel);
    assert.ok(node.routes.some((r) => r.table === 20001 && r.dst === "1.2.3.0/24"));
    assert.ok(!node.routes.some((r) => r.dst === "5.6.7.0/24"));
  });

  test(`${name}: the nft table reads back with the keys it was rendered with, and goes`, async () => {
    const kernel = await makeKernel();
    await kernel.runNft(renderNft(SPEC));
    const owned = (await read(kernel)).firewall.find((f) => f.backend === "nftables");
    assert.deepEqual([...(owned?.ruleKeys ?? [])].sort(), firewallRuleKeys(SPEC).sort());
    // The firewall-only read (verification's) sees the same as the whole node's read.
    assert.deepEqual(await kernel.readFirewall(["nftables", "iptables"]), (await read(kernel)).firewall);
    await kernel.runNft(renderNft(undefined));
    assert.deepEqual((await read(kernel)).firewall.find((f) => f.backend === "nftables")?.ruleKeys, []);
  });

  test(`${name}: classify chains named after odd interface names load and read back`, async () => {
    // Every character an interface name may hold, in places nft could read otherwise (a leading
    // `-` or `.`, a number, an address, a keyword); the interfaces need not exist (`iifname`).
    const names = [
      "ext0",
      "-x",
      ".x",
      "x..",
      "0",
      "1.2.3.4",
      "eth0.100",
      "a-b_c.d",
      "vmap",
      "123456789012345",
    ];
    const spec: FirewallSpec = {
      backend: "nftables",
      mask: 0xff,
      entries: names.map((iif, i) => ({
        network: `n${i}`,
        family: 4 as const,
        iif,
        pools: [`100.64.${i}.0/24`],
        value: i + 1,
      })),
    };
    const kernel = await makeKernel();
    await kernel.runNft(renderNft(spec));
    const owned = (await read(kernel)).firewall.find((f) => f.backend === "nftables");
    assert.deepEqual([...(owned?.ruleKeys ?? [])].sort(), firewallRuleKeys(spec).sort());
    await kernel.runNft(renderNft(undefined));
  });

  test(`${name}: iptables chains and ipsets read back with their keys, and go`, async () => {
    const kernel = await makeKernel();
    const spec: FirewallSpec = { ...SPEC, backend: "iptables" };
    await converge(kernel, spec, "iptables");
    const owned = (await read(kernel)).firewall.find((f) => f.backend === "iptables");
    assert.deepEqual([...(owned?.ruleKeys ?? [])].sort(), firewallRuleKeys(spec).sort());
    // One set per family for classify: the pools are not rules.
    assert.equal(owned?.ruleKeys.filter((k) => k.startsWith(IPSET_KEY_PREFIX)).length, 2);
    assert.deepEqual(await kernel.readFirewall(["iptables"]), [owned]);
    await converge(kernel, undefined, "iptables");
    assert.deepEqual((await read(kernel)).firewall.find((f) => f.backend === "iptables")?.ruleKeys, []);
  });

  test(`${name}: ipset restore stops at a failing line, names it, and keeps what ran before it`, async () => {
    const kernel = await makeKernel();
    await assert.rejects(
      kernel.runIpsetRestore(
        [
          "create symroute-c4-00000001 hash:net,iface family inet",
          "add symroute-c4-00000001 1.2.3.0/24,ext0",
          "add symroute-c4-00000001 bogus",
          "create symroute-c4-00000002 hash:net,iface family inet",
        ].join("\n") + "\n",
      ),
      (e: unknown) =>
        isSymrouteError(e) &&
        e.details.some((d) => d.startsWith("failing line 3: add symroute-c4-00000001 bogus")),
    );
    const keys = (await kernel.readFirewall(["iptables"]))[0]?.ruleKeys ?? [];
    assert.ok(keys.includes(`${IPSET_KEY_PREFIX}symroute-c4-00000001`), keys.join(","));
    assert.ok(!keys.includes(`${IPSET_KEY_PREFIX}symroute-c4-00000002`), keys.join(","));
    // -exist: creating the same set again and destroying an absent one are no errors.
    await kernel.runIpsetRestore(
      "create symroute-c4-00000001 hash:net,iface family inet\ndestroy symroute-c4-00000001\ndestroy symroute-c4-00000001\n",
    );
    assert.deepEqual((await kernel.readFirewall(["iptables"]))[0]?.ruleKeys ?? [], []);
  });

  test(`${name}: a rule cannot refer to a missing set, and a set in use cannot be destroyed`, async () => {
    const kernel = await makeKernel();
    const spec: FirewallSpec = { ...GUARDED, backend: "iptables" };
    // The rules without their sets: refused whole.
    await assert.rejects(kernel.runIptablesRestore(4, renderIptables(spec, 4, new Set())));
    assert.deepEqual((await kernel.readFirewall(["iptables"]))[0]?.ruleKeys ?? [], []);
    await converge(kernel, spec, "iptables");
    const sets = ipsetsOf(spec).map((s) => s.name);
    // Per family, one set for classify and one for the guards' pools.
    assert.equal(sets.length, 4);
    await assert.rejects(kernel.runIpsetRestore(`destroy ${sets[0]}\n`));
    const keys = (await kernel.readFirewall(["iptables"]))[0]?.ruleKeys ?? [];
    for (const set of sets) assert.ok(keys.includes(IPSET_KEY_PREFIX + set), set);
    await converge(kernel, undefined, "iptables");
  });

  for (const backend of ["nftables", "iptables"] as const) {
    test(`${name}: guards and ARP probes read back with their keys, and go (${backend})`, async () => {
      const kernel = await makeKernel();
      const spec: FirewallSpec = { ...GUARDED, backend };
      await converge(kernel, spec, backend);
      const firewall = await kernel.readFirewall(["nftables", "iptables"]);
      const owned = (b: FirewallBackend) =>
        [...(firewall.find((f) => f.backend === b)?.ruleKeys ?? [])].sort();
      assert.deepEqual(owned(backend), firewallRuleKeys(spec).sort());
      // The ARP table belongs with the front end that put it there, and with that one only.
      assert.ok(owned(backend).some((k) => k.startsWith("arp:")));
      assert.deepEqual(owned(backend === "nftables" ? "iptables" : "nftables"), []);
      // Fewer guards and no probes: what is no longer asked for goes (the eth0 guard's chain too).
      const smaller: FirewallSpec = { ...spec, guards: spec.guards?.filter((g) => g.iif === "ext0") ?? [] };
      delete (smaller as { arpProbes?: unknown }).arpProbes;
      await converge(kernel, smaller, backend);
      const after = await kernel.readFirewall([backend]);
      assert.deepEqual([...(after[0]?.ruleKeys ?? [])].sort(), firewallRuleKeys(smaller).sort());
      await converge(kernel, undefined, backend);
      assert.deepEqual(
        (await kernel.readFirewall(["nftables", "iptables"])).flatMap((f) => f.ruleKeys),
        [],
      );
    });
  }

  test(`${name}: a read of one family holds that family's objects only, and the links`, async () => {
    const kernel = await makeKernel();
    await kernel.runIpBatch(6, ["route add 2001:db8:5::/64 dev ext0 table 20000 proto 201"]);
    const both = await read(kernel);
    for (const family of [4, 6] as const) {
      const one = await kernel.readNode({ ...SYSCTLS_TO_READ, firewalls: [], families: [family] });
      assert.deepEqual(one.links, both.links);
      assert.deepEqual(
        one.routes,
        both.routes.filter((r) => r.family === family),
      );
      assert.deepEqual(
        one.rules,
        both.rules.filter((r) => r.family === family),
      );
      assert.deepEqual(
        one.addresses,
        both.addresses.filter((a) => a.family === family),
      );
      assert.deepEqual(one.sysctls, both.sysctls);
    }
  });

  test(`${name}: a read of some route tables holds their routes only, and everything else whole`, async () => {
    const kernel = await makeKernel();
    await kernel.runIpBatch(4, [
      "route add 1.2.3.0/24 dev ext0 table 20000 proto 201",
      "route add 1.2.4.0/24 dev ext0 table 20001 proto 201",
    ]);
    await kernel.runIpBatch(6, ["route add 2001:db8:5::/64 dev ext0 table 20000 proto 201"]);
    const scope = { ...SYSCTLS_TO_READ, firewalls: [] };
    const all = await kernel.readNode(scope);
    for (const tables of [[20000], [254, 20001], []]) {
      const some = await kernel.readNode({ ...scope, routeTables: tables });
      // In any order: `table all` lists the tables in the kernel's order, these in the order asked.
      const sorted = (routes: readonly unknown[]): string[] => routes.map((r) => JSON.stringify(r)).sort();
      assert.deepEqual(
        sorted(some.routes),
        sorted(all.routes.filter((r) => tables.includes(r.table))),
        `tables ${tables.join(",")}`,
      );
      assert.deepEqual(some.links, all.links);
      assert.deepEqual(some.addresses, all.addresses);
      assert.deepEqual(some.rules, all.rules);
    }
  });

  test(`${name}: a read of some rule priorities holds their rules only, in the kernel's order`, async () => {
    const kernel = await makeKernel();
    await kernel.runIpBatch(4, [
      "rule add priority 1000 fwmark 0x1/0xff lookup 20000 proto 201",
      "rule add priority 1000 from 1.2.3.0/24 lookup 20001 proto 201",
      "rule add priority 1001 fwmark 0x2/0xff lookup 20001 proto 201",
    ]);
    await kernel.runIpBatch(6, ["rule add priority 1000 fwmark 0x1/0xff lookup 20000 proto 201"]);
    const scope = { ...SYSCTLS_TO_READ, firewalls: [] };
    const all = await kernel.readNode(scope);
    for (const priorities of [[1000], [1001, 32766], []]) {
      const some = await kernel.readNode({ ...scope, rulePriorities: priorities });
      assert.deepEqual(
        some.rules,
        all.rules.filter((r) => priorities.includes(r.priority)),
        `priorities ${priorities.join(",")}`,
      );
      assert.deepEqual(some.routes, all.routes);
    }
  });

  test(`${name}: sysctls written read back`, async () => {
    const kernel = await makeKernel();
    await kernel.writeSysctls([["net/ipv4/conf/ext0/rp_filter", "2"]]);
    assert.equal((await read(kernel)).sysctls["net/ipv4/conf/ext0/rp_filter"], "2");
  });
}
