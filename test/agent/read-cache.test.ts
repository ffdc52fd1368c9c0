// The agent's read cache (src/agent/read-cache.ts) around the in-memory kernel: a reconcile served
// from it plans the same payloads as one that reads the node, and whatever the monitors show of a
// change the agent did not make (a routing line stamped after the read, an nft transaction of
// another process), a monitor that stopped, a write or `forget` sends the next read to the kernel.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { createEngine } from "../../src/engine/engine.ts";
import { BatchError, type Kernel, type ReadScope } from "../../src/engine/ports.ts";
import {
  generationProcess,
  MAX_CHAINS_LISTED,
  OWN_PROCESS_MS,
  ReadCache,
  splitStamp,
  batchTargets,
  routeLineTable,
  ruleLinePriority,
} from "../../src/agent/read-cache.ts";
import { scriptChains } from "../../src/agent/nft-chains.ts";
import type { ConfigSource } from "../../src/agent/config-source.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { Reconciler } from "../../src/agent/reconciler.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { cached, listening, OWN_PID, sourceOf, stamped } from "./support/read-cache.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom, dualStackGatewayConfig } from "../support/config.ts";

const FOREIGN_PID = 777;

const twoNetworks = configFrom(`
firewall: nftables
networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
  - name: second
    addresses: [1.2.4.0/24]
    interface: ext0
    gateway: 1.2.3.1
`);

test("ip -ts stamps and nft's generation lines are read as the monitors print them", () => {
  const { at, event } = splitStamp(
    "[2026-12-07T00:06:09.601195] [RULE]1000:\tfrom all fwmark 0x5/0xff lookup 100",
  );
  assert.equal(at, Date.UTC(2026, 11, 7, 0, 6, 9) + 601.195);
  assert.equal(event, "[RULE]1000:\tfrom all fwmark 0x5/0xff lookup 100");
  assert.deepEqual(splitStamp("[ROUTE]default via 1.2.3.1"), {
    at: undefined,
    event: "[ROUTE]default via 1.2.3.1",
  });
  assert.equal(generationProcess("# new generation 6 by process 22509 (nft)"), 22509);
  assert.equal(generationProcess("# new generation 6"), "unknown");
  assert.equal(generationProcess("delete table inet symroute"), undefined);
});

test("a reconcile served from the cache plans and writes the same payloads as one that reads the node", async () => {
  const plain = new FakeKernel(articleNode());
  const fake = new FakeKernel(articleNode());
  const { wrapped, reads } = cached(fake);
  const engines = [
    createEngine({ kernel: plain, store: new MemoryStore() }),
    createEngine({ kernel: wrapped, store: new MemoryStore() }),
  ] as const;
  for (const config of [
    dualStackGatewayConfig("nftables"),
    twoNetworks,
    dualStackGatewayConfig("nftables"),
  ]) {
    reads.length = 0;
    const [a, b] = await Promise.all(engines.map((e) => e.apply(config)));
    assert.deepEqual(b?.payloads, a?.payloads);
    assert.deepEqual(b?.changes, a?.changes);
    assert.equal(b?.applied, a?.applied);
    assert.deepEqual(fake.state, plain.state);
    const [pa, pb] = await Promise.all(engines.map((e) => e.plan(config)));
    assert.deepEqual(pb, pa);
    assert.equal(pb?.inSync, true);
  }
  // After the first apply, each plan before a write came from what verification read.
  assert.ok(reads.includes("cache"), reads.join(" "));
});

test("a foreign routing change stamped after the read is read again and repaired; without its line it is not seen", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped } = cached(fake);
  const engine = createEngine({ kernel: wrapped, store: new MemoryStore() });
  const config = dualStackGatewayConfig("nftables");
  await engine.apply(config);
  const converged = structuredClone(fake.state);
  const owned = fake.state.rules.find(
    (r) => r.protocol !== undefined && r.priority !== undefined && r.table !== 254,
  );
  assert.ok(owned !== undefined);
  const dropRule = (): void => {
    fake.state = { ...fake.state, rules: fake.state.rules.filter((r) => r !== owned) };
  };

  // No monitor line: the cache still holds the node as verified (what the monitors are for).
  dropRule();
  assert.equal((await engine.plan(config)).inSync, true);

  // The monitor's line, stamped after the read: the next reconcile reads the node and repairs it.
  cache.routingLine(stamped(Date.now() + 1, "[RULE]Deleted 10000:\tfrom all fwmark 0x100/0x3fff lookup 100"));
  const repaired = await engine.apply(config);
  assert.equal(repaired.applied, true);
  assert.ok(repaired.changes.length > 0);
  assert.deepEqual(fake.state.rules, converged.rules);
});

test("nft transactions: the agent's own keep the firewall read, another process's drop it", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  await createEngine({ kernel: wrapped, store: new MemoryStore() }).apply(dualStackGatewayConfig("nftables"));
  const readFirewall = () => sourceOf(reads, () => wrapped.readFirewall(["nftables"]));
  assert.equal(await readFirewall(), "cache");
  cache.firewallLine("add rule inet symroute pre counter");
  assert.equal(await readFirewall(), "kernel", "a transaction whose process is not known yet");
  cache.firewallLine(`# new generation 7 by process ${OWN_PID} (nft)`);
  // The read made while it was pending started after the change: kept.
  assert.equal(await readFirewall(), "cache");
  cache.firewallLine("delete rule inet symroute pre handle 4");
  cache.firewallLine(`# new generation 8 by process ${FOREIGN_PID} (nft)`);
  assert.equal(await readFirewall(), "kernel");
  assert.equal(await readFirewall(), "cache");
  // The iptables front end's reads are never kept (its ipsets change without an event).
  reads.length = 0;
  await wrapped.readFirewall(["iptables"]);
  assert.deepEqual(reads, []);
});

test("a stopped monitor, a write of the agent's and forget() each send the next read to the kernel", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  const scope = { sysctls: [], firewalls: [] };
  const read = () => sourceOf(reads, () => wrapped.readNode(scope));
  assert.equal(await read(), "kernel");
  assert.equal(await read(), "cache");
  cache.monitorDown("routing");
  assert.equal(await read(), "kernel");
  assert.equal(await read(), "kernel", "until the restarted monitor shows a line");
  cache.routingLine(stamped(Date.now() - 1, "[LINK]1: lo: <LOOPBACK,UP>"));
  assert.equal(await read(), "kernel", "the line came after the last read started");
  assert.equal(await read(), "cache");
  await wrapped.runIpBatch(4, ["rule add priority 99 lookup 99"]);
  // Rules are read whole; of the routes only main's and local's (pods come and go there).
  assert.equal(await read(), "tables");
  assert.equal(await read(), "cache");
  await wrapped.runIpBatch(4, ["link set ext0 mtu 1400"]);
  assert.equal(await read(), "kernel", "a link's change may drop routes in any table");
  assert.equal(await read(), "cache");
  cache.forget();
  assert.equal(await read(), "kernel");
  // A read asked for one family is the kept node's, filtered as the kernel adapter would.
  const v4 = await wrapped.readNode({ ...scope, families: [4] });
  assert.deepEqual(v4.rules, (await fake.readNode({ ...scope, families: [4] })).rules);
});

test("the route tables of the agent's batches and of ip monitor's lines", () => {
  assert.deepEqual(
    batchTargets([
      "route replace default via 1.2.3.1 dev ext0 table 20000 proto 201",
      "rule add priority 1000 fwmark 0x1/0x3fff lookup 20000 proto 201",
      "route del 1.2.4.0/24 dev ext0 table 20001 proto 201",
    ]),
    { tables: new Set([20000, 20001]), priorities: new Set([1000]) },
  );
  assert.equal(batchTargets(["route add 1.2.3.0/24 dev ext0"]), undefined, "main, unnamed");
  assert.equal(batchTargets(["rule add fwmark 0x1 lookup 20000"]), undefined, "no priority");
  assert.equal(batchTargets(["link add link eth0 name eth0.100 type vlan id 100"]), undefined);
  assert.equal(batchTargets(["addr add 1.2.3.4/32 dev ext0"]), undefined);
  assert.equal(ruleLinePriority("[RULE]1000:\tfrom all fwmark 0x1/0x3fff lookup 20000 proto 201"), 1000);
  assert.equal(ruleLinePriority("[RULE]Deleted 1001:\tfrom all lookup 20001"), 1001);
  assert.equal(ruleLinePriority("[ROUTE]default via 1.2.3.1 dev ext0 table 20000"), undefined);
  assert.equal(routeLineTable("[ROUTE]default via 1.2.3.1 dev ext0 table 20000 proto 201"), 20000);
  assert.equal(routeLineTable("[ROUTE]Deleted 1.2.4.0/24 dev ext0 table 20001 proto 201 scope link"), 20001);
  assert.equal(routeLineTable("[ROUTE]10.112.0.5 dev vpod scope link"), 254);
  assert.equal(routeLineTable("[ROUTE]local 10.112.0.1 dev vpod table local proto kernel scope host"), 255);
  assert.equal(routeLineTable("[ROUTE]default dev ext0 table symroute"), undefined, "a table's name");
  assert.equal(routeLineTable("[RULE]1000:\tfrom all lookup 20000"), undefined);
});

/** The kernel's routing as a comparable text: every route, in any order. */
const routesOf = (node: { readonly routes: readonly unknown[] }): string[] =>
  node.routes.map((r) => JSON.stringify(r)).sort();

test("after the agent's routing write, the read takes only the tables and priorities it and the lines since named from the kernel", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  await createEngine({ kernel: wrapped, store: new MemoryStore() }).apply(twoNetworks);
  const scopes: ReadScope[] = [];
  const readNode = fake.readNode.bind(fake);
  fake.readNode = (scope) => {
    scopes.push(scope);
    return readNode(scope);
  };
  const scope = { sysctls: [], firewalls: [] };
  const whole = async (): Promise<string[]> => routesOf(await readNode(scope));
  const tablesOf = (route: { table: number }): number => route.table;
  const owned = [...new Set(fake.state.routes.map(tablesOf))].filter((t) => t >= 20000);
  assert.ok(owned.length >= 2, `symroute's tables: ${owned.join(", ")}`);
  const [first = 0, second = 0] = owned;

  // The agent writes table `first`; another process deletes a route of `second`, its line stamped
  // after the kept read (it came before the verification's read).
  await wrapped.readNode(scope);
  reads.length = 0;
  await wrapped.readNode(scope);
  assert.deepEqual(reads, ["cache"]);
  // Stamps between the kept read's start and the next read's: the clock moves on first.
  const kept = Date.now();
  while (Date.now() <= kept + 2);
  await wrapped.runIpBatch(4, [
    `route add 198.51.100.0/24 dev ext0 table ${first} proto 201`,
    `rule add priority 31000 from 198.51.100.0/24 lookup ${first} proto 201`,
  ]);
  const foreign = fake.state.routes.find((r) => r.table === second);
  assert.ok(foreign !== undefined);
  // And one of symroute's rules, deleted by another process too.
  const foreignRule = fake.state.rules.find((r) => r.family === 4 && r.table === second);
  assert.ok(foreignRule !== undefined);
  fake.state = {
    ...fake.state,
    routes: fake.state.routes.filter((r) => r !== foreign),
    rules: fake.state.rules.filter((r) => r !== foreignRule),
  };
  cache.routingLine(stamped(kept + 1, `[ROUTE]Deleted ${foreign.dst} dev ext0 table ${second} proto 201`));
  cache.routingLine(stamped(kept + 1, `[RULE]Deleted ${foreignRule.priority}:\tfrom all lookup ${second}`));
  scopes.length = 0;
  reads.length = 0;
  const read = await wrapped.readNode(scope);
  assert.deepEqual(reads, ["tables"]);
  assert.deepEqual(
    scopes.map((s) => s.routeTables),
    [[254, 255, first, second].sort((a, b) => a - b)],
  );
  assert.deepEqual(
    scopes.map((s) => s.rulePriorities),
    [[foreignRule.priority, 31000].sort((a, b) => a - b)],
  );
  assert.deepEqual(routesOf(read), await whole());
  // The rules in the kernel's order, as a whole read gives them.
  assert.deepEqual(read.rules, (await readNode(scope)).rules);
  // Kept as composed, and good while no line concerns another table.
  reads.length = 0;
  assert.deepEqual(routesOf(await wrapped.readNode(scope)), await whole());
  assert.deepEqual(reads, ["cache"]);
});

test("a composed read is stale once a late line names a table it took from the older read", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  await createEngine({ kernel: wrapped, store: new MemoryStore() }).apply(twoNetworks);
  const scope = { sysctls: [], firewalls: [] };
  const owned = [...new Set(fake.state.routes.map((r) => r.table))].filter((t) => t >= 20000);
  const [first = 0, second = 0] = owned;
  const basisRead = Date.now();
  await wrapped.readNode(scope);
  // The clock moves on, so that the composed read starts after the foreign change's stamp.
  while (Date.now() <= basisRead + 2);
  await wrapped.runIpBatch(4, [`route add 198.51.100.0/24 dev ext0 table ${first} proto 201`]);
  // Another process deletes a route of `second` before the verification reads; its line comes
  // only after that read (ip's pipe, the event loop), stamped before it.
  const foreign = fake.state.routes.find((r) => r.table === second);
  assert.ok(foreign !== undefined);
  fake.state = { ...fake.state, routes: fake.state.routes.filter((r) => r !== foreign) };
  reads.length = 0;
  const read = await wrapped.readNode(scope);
  assert.deepEqual(reads, ["tables"]);
  assert.ok(routesOf(read).includes(JSON.stringify(foreign)), "the composed read missed it");
  cache.routingLine(
    stamped(basisRead + 1, `[ROUTE]Deleted ${foreign.dst} dev ext0 table ${second} proto 201`),
  );
  reads.length = 0;
  const again = await wrapped.readNode(scope);
  assert.deepEqual(reads, ["kernel"]);
  assert.deepEqual(routesOf(again), routesOf(await fake.readNode(scope)));
  assert.equal(cache.unchanged(), false);
});

test("a composed read is stale once a late line names a rule priority it took from the older read", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  await createEngine({ kernel: wrapped, store: new MemoryStore() }).apply(twoNetworks);
  const scope = { sysctls: [], firewalls: [] };
  const victim = fake.state.rules.find((r) => r.family === 4 && r.table !== undefined && r.table >= 20000);
  assert.ok(victim !== undefined);
  await wrapped.readNode(scope);
  const basisRead = Date.now();
  await wrapped.readNode(scope);
  while (Date.now() <= basisRead + 2);
  await wrapped.runIpBatch(4, ["rule add priority 31000 from 198.51.100.0/24 lookup 30000"]);
  fake.state = { ...fake.state, rules: fake.state.rules.filter((r) => r !== victim) };
  reads.length = 0;
  await wrapped.readNode(scope);
  assert.deepEqual(reads, ["tables"]);
  cache.routingLine(
    stamped(basisRead + 1, `[RULE]Deleted ${victim.priority}:\tfrom all lookup ${victim.table}`),
  );
  reads.length = 0;
  const again = await wrapped.readNode(scope);
  assert.deepEqual(reads, ["kernel"]);
  assert.deepEqual(again.rules, (await fake.readNode(scope)).rules);
});

test("a batch that names more route tables than are worth a command each is verified by a whole read", async () => {
  const fake = new FakeKernel(articleNode());
  const { wrapped, reads } = cached(fake);
  const scope = { sysctls: [], firewalls: [] };
  await wrapped.readNode(scope);
  const many = Array.from(
    { length: 65 },
    (_, i) => `route add 198.51.100.${i}/32 dev ext0 table ${30000 + i}`,
  );
  await wrapped.runIpBatch(4, many);
  reads.length = 0;
  await wrapped.readNode(scope);
  assert.deepEqual(reads, ["kernel"]);
  await wrapped.runIpBatch(
    4,
    many.slice(0, 62).map((l) => l.replace("route add", "route del")),
  );
  reads.length = 0;
  await wrapped.readNode(scope);
  assert.deepEqual(reads, ["tables"], "62 tables, main and local");
});

test("a link's or an address's line since the kept read makes the read after a write whole", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  await createEngine({ kernel: wrapped, store: new MemoryStore() }).apply(twoNetworks);
  const scope = { sysctls: [], firewalls: [] };
  const owned = [...new Set(fake.state.routes.map((r) => r.table))].filter((t) => t >= 20000);
  for (const line of [
    "[LINK]5: ext1@if4: <BROADCAST,MULTICAST> mtu 1500",
    "[ADDR]Deleted 5: ext1 inet 1.2.9.4/24",
  ]) {
    await wrapped.readNode(scope);
    await wrapped.runIpBatch(4, [`route add 198.51.100.0/24 dev ext0 table ${owned[0] ?? 0} proto 201`]);
    cache.routingLine(stamped(Date.now() + 0.5, line));
    reads.length = 0;
    await wrapped.readNode(scope);
    assert.deepEqual(reads, ["kernel"], line);
    await wrapped.runIpBatch(4, [`route del 198.51.100.0/24 dev ext0 table ${owned[0] ?? 0} proto 201`]);
    await wrapped.readNode(scope);
  }
});

/** What nft lists for a whole-table script, as the kernel adapter parses it (one line per rule). */
/** One chain of what `script` wrote, as `nft -t list chain` gives it (no `arp:` label); noted in `listed`. */
async function listChainOf(
  script: string,
  listed: string[],
  family: string,
  chain: string,
): Promise<{ key: string | undefined; content: string }[]> {
  listed.push(`${family} ${chain}`);
  const label = family === "arp" ? `arp:${chain}` : chain;
  return listingOf(script)
    .contents.filter((c) => c.startsWith(`${label}: `))
    .map((c) => c.slice(family === "arp" ? 4 : 0))
    .map((content) => ({ key: / comment "([^"]*)"$/.exec(content)?.[1], content }));
}

function listingOf(script: string): { ruleKeys: string[]; contents: string[] } {
  const ruleKeys: string[] = [];
  const contents: string[] = [];
  for (const [label, { text }] of scriptChains(script) ?? []) {
    for (const line of text.split("\n").map((l) => l.trim())) {
      // The ARP table's base chain line has no key: the front end's read leaves it out.
      if (line.startsWith("type ") && label.startsWith("arp:")) continue;
      contents.push(`${label}: ${line}`);
      if (line.startsWith("type ")) continue;
      const key = / comment "([^"]*)"$/.exec(line)?.[1] ?? "";
      ruleKeys.push(label.startsWith("arp:") ? `arp:${key}` : key);
    }
  }
  return { ruleKeys, contents };
}

const script = (chains: Record<string, string>, probe = "ext0", pools = "1.2.3.0/24"): string =>
  [
    "table inet symroute {}",
    "delete table inet symroute",
    "table inet symroute {",
    ...Object.entries(chains).flatMap(([name, rule]) => [`  chain ${name} {`, `    ${rule}`, "  }"]),
    "}",
    "table netdev symroute {}",
    "delete table netdev symroute",
    "table netdev symroute {",
    "  chain guard_ext0 {",
    '    type filter hook ingress device "ext0" priority -500; policy accept;',
    `    ip daddr { ${pools} } return comment "ext0 pools"`,
    "  }",
    "}",
    "table arp symroute {}",
    "delete table arp symroute",
    "table arp symroute {",
    "  chain probes {",
    "    type filter hook output priority 0; policy accept;",
    `    oifname "${probe}" arp operation request arp saddr ip set 0.0.0.0 comment "${probe} probe"`,
    "  }",
    "}",
    "",
  ].join("\n");

test("a transaction is split by chain only when it has the shape symroute renders", () => {
  const chains = scriptChains(script({ pre: 'counter comment "pre"' }));
  assert.deepEqual([...(chains?.keys() ?? [])], ["pre", "guard_ext0", "arp:probes"]);
  assert.equal(chains?.get("guard_ext0")?.family, "netdev");
  // A table of another family, or a chain named alike in two tables: listed whole instead.
  assert.equal(scriptChains(script({ pre: "x" }).replace(/netdev/g, "bridge")), undefined);
  assert.equal(scriptChains(script({ guard_ext0: "x" })), undefined);
  assert.equal(scriptChains("table arp symroute {}\ndelete table arp symroute\n"), undefined);
});

test("after the agent's own nft transaction only the chains whose text changed are listed", async () => {
  let current = "";
  let fullReads = 0;
  const listedChains: string[] = [];
  const kernel = {
    runNft: async (s: string) => {
      current = s;
    },
    readFirewall: async () => {
      fullReads++;
      return [{ backend: "nftables" as const, ...listingOf(current) }];
    },
  } as unknown as Kernel;
  const cache = new ReadCache({
    listNftChain: (family, chain) => listChainOf(current, listedChains, family, chain),
  });
  listening(cache, { routing: false });
  const wrapped = cache.wrap(kernel);

  const first = script({
    pre: 'counter comment "pre"',
    c0x1: 'ct mark set 1 comment "n0"',
    c0x2: 'ct mark set 2 comment "n1"',
  });
  await wrapped.runNft(first);
  assert.deepEqual(await wrapped.readFirewall(["nftables"]), [{ backend: "nftables", ...listingOf(first) }]);
  assert.equal(fullReads, 1);

  // pre changed, c0x2 gone, c0x3 new, c0x1 and the ARP table as before.
  const second = script({
    pre: 'counter accept comment "pre"',
    c0x1: 'ct mark set 1 comment "n0"',
    c0x3: 'ct mark set 3 comment "n2"',
  });
  await wrapped.runNft(second);
  const after = await wrapped.readFirewall(["nftables"]);
  assert.equal(fullReads, 1, "no whole listing");
  assert.deepEqual(listedChains, ["inet pre", "inet c0x3"]);
  assert.deepEqual(after, [{ backend: "nftables", ...listingOf(second) }]);

  // The ARP table's chain and the netdev guard changed too: each listed alone, from its table.
  listedChains.length = 0;
  const third = script(
    { pre: 'counter accept comment "pre"', c0x1: 'ct mark set 1 comment "n0"' },
    "ext1",
    "1.2.0.0/16",
  );
  await wrapped.runNft(third);
  assert.deepEqual(await wrapped.readFirewall(["nftables"]), [{ backend: "nftables", ...listingOf(third) }]);
  assert.deepEqual(listedChains, ["netdev guard_ext0", "arp probes"]);
  assert.equal(fullReads, 1);

  // More chains changed than are worth a process each: listed whole.
  const many = Object.fromEntries(
    Array.from({ length: MAX_CHAINS_LISTED + 1 }, (_, i) => [
      `c0x${i + 10}`,
      `ct mark set ${i} comment "m${i}"`,
    ]),
  );
  listedChains.length = 0;
  const wide = script({ pre: 'counter accept comment "pre"', ...many }, "ext1", "1.2.0.0/16");
  await wrapped.runNft(wide);
  assert.deepEqual(await wrapped.readFirewall(["nftables"]), [{ backend: "nftables", ...listingOf(wide) }]);
  assert.deepEqual(listedChains, []);
  assert.equal(fullReads, 2);
  fullReads = 1;

  // Another process's transaction in between: listed whole.
  await wrapped.runNft(first);
  cache.firewallLine(`# new generation 9 by process ${FOREIGN_PID} (nft)`);
  assert.deepEqual(await wrapped.readFirewall(["nftables"]), [{ backend: "nftables", ...listingOf(first) }]);
  assert.equal(fullReads, 2);
});

test("a transaction whose generation line has not come yet: reads before its first line wait for it, reads after it are good", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  const from = (read: () => Promise<unknown>) => sourceOf(reads, read);
  const firewall = () => wrapped.readFirewall(["nftables"]);
  // kube-proxy's traces (kubeProxyMode auto) are kept with the routing read.
  const node = () => wrapped.readNode({ sysctls: [], firewalls: [], kubeProxyHints: true });
  assert.equal(await from(firewall), "kernel");
  assert.equal(await from(node), "kernel");
  cache.firewallLine("add rule inet symroute pre counter");
  assert.equal(await from(node), "cache", "lines about symroute's tables say nothing of kube-proxy's");
  assert.equal(await from(firewall), "kernel", "kept before the line");
  assert.equal(await from(firewall), "cache", "read after the line came");
  cache.firewallLine("add rule ip kube-proxy services counter");
  assert.equal(await from(node), "kernel");
  cache.firewallLine(`# new generation 3 by process ${FOREIGN_PID} (kube-proxy)`);
  assert.equal(await from(firewall), "kernel", "another process's transaction");
  assert.equal(await from(node), "kernel");
  assert.equal(await from(node), "cache");
});

test("a process id the agent used long ago is another process's by now: its transaction drops the firewall read", async () => {
  let clock = 0;
  const fake = new FakeKernel(articleNode());
  const reads: string[] = [];
  const cache = new ReadCache({
    readSysctl: async (name) => fake.state.sysctls[name],
    onRead: (from) => reads.push(from),
    now: () => clock,
  });
  const wrapped = cache.wrap(fake);
  const from = (): Promise<string | undefined> => {
    clock += 1;
    return sourceOf(reads, () => wrapped.readFirewall(["nftables"]));
  };
  listening(cache, { routing: false });
  assert.equal(await from(), "kernel");
  cache.firewallLine(`# new generation 2 by process ${OWN_PID} (nft)`);
  assert.equal(await from(), "cache", "the agent's own, just now");
  clock += OWN_PROCESS_MS + 1;
  cache.firewallLine(`# new generation 3 by process ${OWN_PID} (nft)`);
  assert.equal(await from(), "kernel", "the same id, long after the agent started it");
});

/** The nft scripts `fake` ran since `from`, each as `partial` or `full`. */
const nftRuns = (fake: FakeKernel, from = 0): string[] =>
  fake.log
    .slice(from)
    .filter((l) => l.tool === "nft -f")
    .map((l) => (l.input.startsWith("table inet symroute {}\n") ? "full" : "partial"));

/** A fake kernel's methods as own properties (a class's are not), to replace one of them. */
const bound = (fake: FakeKernel): Kernel =>
  Object.fromEntries(
    Object.getOwnPropertyNames(FakeKernel.prototype)
      .filter((name) => name !== "constructor")
      .map((name) => [
        name,
        (...args: unknown[]) =>
          (fake as unknown as Record<string, (...a: unknown[]) => unknown>)[name]?.(...args),
      ]),
  ) as unknown as Kernel;

const sortedFirewall = (fake: FakeKernel): unknown =>
  fake.state.firewall.map((f) => ({ ...f, ruleKeys: [...f.ruleKeys].sort() }));

const threeNetworks = configFrom(`
firewall: nftables
networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
  - name: third
    addresses: [1.2.5.0/24]
    interface: ext0
    gateway: 1.2.3.1
`);

test("once a reconcile verified the node, the next nft transaction changes only the chains that differ, and leaves what a whole-table one leaves", async () => {
  const plain = new FakeKernel(articleNode());
  const fake = new FakeKernel(articleNode());
  const kinds: string[] = [];
  const cache = new ReadCache({
    readSysctl: async (name) => fake.state.sysctls[name],
    onNftTransaction: (kind) => kinds.push(kind),
  });
  listening(cache);
  const engines = [
    createEngine({ kernel: plain, store: new MemoryStore() }),
    createEngine({ kernel: cache.wrap(fake), store: new MemoryStore() }),
  ] as const;
  const configs = [
    dualStackGatewayConfig("nftables"),
    twoNetworks, // a network added
    threeNetworks, // one removed (its chains deleted), one added
    dualStackGatewayConfig("nftables"),
  ];
  for (const config of configs) {
    const [a, b] = await Promise.all(engines.map((e) => e.apply(config)));
    assert.deepEqual(b?.changes, a?.changes);
    assert.equal(b?.inSync, true);
    assert.deepEqual(sortedFirewall(fake), sortedFirewall(plain));
    assert.deepEqual({ ...fake.state, firewall: [] }, { ...plain.state, firewall: [] });
    // The agent's reconciler says so after each verified reconcile.
    cache.verified();
  }
  assert.deepEqual(nftRuns(fake), ["full", "partial", "partial", "partial"]);
  assert.deepEqual(kinds, ["full", "partial", "partial", "partial"]);
  assert.equal(cache.takeNftTransaction(), "full", "the first since the last take");
  assert.equal(cache.takeNftTransaction(), undefined);
  // The third network's chains went with it.
  const removal = fake.log.filter((l) => l.tool === "nft -f")[3]?.input ?? "";
  assert.match(removal, /^delete chain inet symroute \S+$/m, removal);
});

test("the whole-table transaction: before a verified reconcile, after forget(), after another process's nft transaction, and when nft refuses the partial one", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped } = cached(fake);
  const engine = createEngine({ kernel: wrapped, store: new MemoryStore() });
  const flip = [twoNetworks, dualStackGatewayConfig("nftables")];
  let turn = 0;
  const next = async (verify = true): Promise<string | undefined> => {
    const from = fake.log.length;
    const report = await engine.apply(flip[turn++ % 2] as (typeof flip)[number]);
    assert.equal(report.inSync, true);
    if (verify) cache.verified();
    return nftRuns(fake, from)[0];
  };
  assert.equal(await next(false), "full", "the first");
  assert.equal(await next(), "full", "the last one was not verified");
  assert.equal(await next(), "partial");
  cache.forget();
  assert.equal(await next(), "full", "forgotten (a resync, a failure)");
  cache.firewallLine("add rule inet symroute pre counter");
  cache.firewallLine(`# new generation 9 by process ${FOREIGN_PID} (nft)`);
  assert.equal(await next(), "full", "another process changed nft");
  cache.monitorDown("firewall");
  assert.equal(await next(), "full", "the nft monitor stopped");
  cache.firewallLine(`# new generation 10 by process ${OWN_PID} (nft)`);
  assert.equal(await next(), "full", "its line came after the last transaction");
  assert.equal(await next(), "partial");

  // nft refuses the partial transaction (it changed nothing): the whole-table one runs after it.
  const refusing = new FakeKernel(articleNode());
  const kinds: string[] = [];
  const cache2 = new ReadCache({
    readSysctl: async (name) => refusing.state.sysctls[name],
    onNftTransaction: (kind) => kinds.push(kind),
  });
  listening(cache2);
  const engine2 = createEngine({
    // The fake with its nft refusing anything but a whole-table script.
    kernel: cache2.wrap({
      ...bound(refusing),
      runNft: async (s) => {
        if (!s.startsWith("table inet symroute {}\n"))
          throw new BatchError("kernel", "nft -f - failed (exit 1): Error: refused", {
            tool: "nft",
            failedLine: 1,
            failedText: s.split("\n")[0] ?? "",
            details: [],
          });
        await refusing.runNft(s);
      },
    }),
    store: new MemoryStore(),
  });
  for (const config of [dualStackGatewayConfig("nftables"), twoNetworks]) {
    assert.equal((await engine2.apply(config)).inSync, true);
    cache2.verified();
  }
  assert.deepEqual(kinds, ["full", "partial-refused"]);
  assert.equal(cache2.takeNftTransaction(), "full");
});

test("another process's nft transaction on other tables only (kube-proxy's) keeps symroute's tables known; one with no lines, or naming them, does not", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  const engine = createEngine({ kernel: wrapped, store: new MemoryStore() });
  const firewallFrom = () => sourceOf(reads, () => wrapped.readFirewall(["nftables"]));
  await engine.apply(dualStackGatewayConfig("nftables"));
  cache.verified();
  cache.firewallLine("add rule ip kube-proxy services counter");
  cache.firewallLine(`# new generation 9 by process ${FOREIGN_PID} (kube-proxy)`);
  assert.equal(await firewallFrom(), "cache");
  const from = fake.log.length;
  await engine.apply(twoNetworks);
  cache.verified();
  assert.deepEqual(nftRuns(fake, from), ["partial"]);
  // A generation line whose lines did not come: any table may have changed.
  cache.firewallLine(`# new generation 10 by process ${FOREIGN_PID} (nft)`);
  assert.equal(await firewallFrom(), "kernel");
  cache.firewallLine("add table ip other");
  cache.firewallLine("delete rule inet symroute pre handle 4");
  cache.firewallLine(`# new generation 11 by process ${FOREIGN_PID} (nft)`);
  assert.equal(await firewallFrom(), "kernel");
});

test("a partial transaction no shorter than the whole-table script (most chains new) runs whole", async () => {
  const ran: string[] = [];
  const kernel = {
    runNft: async (s: string) => {
      ran.push(s.startsWith("table inet symroute {}\n") ? "full" : "partial");
    },
  } as unknown as Kernel;
  const cache = new ReadCache({});
  listening(cache, { routing: false });
  const wrapped = cache.wrap(kernel);
  const marks = (n: number): Record<string, string> =>
    Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`c0x${i + 1}`, `ct mark set ${i} comment "m${i}"`]),
    );
  for (const chains of [marks(1), marks(2), marks(40), marks(41)]) {
    await wrapped.runNft(script({ pre: 'counter comment "pre"', ...chains }));
    cache.verified();
  }
  // One chain more: partial; 38 more: longer than the whole script; one more again: partial.
  assert.deepEqual(ran, ["full", "partial", "full", "partial"]);
});

test("a failed apply after a partial nft transaction rolls the tables back whole, to what they held before", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped } = cached(fake);
  const engine = createEngine({ kernel: wrapped, store: new MemoryStore() });
  await engine.apply(dualStackGatewayConfig("nftables"));
  cache.verified();
  const before = sortedFirewall(fake);
  const from = fake.log.length;
  // The second network's routing fails: its ip batch line is refused after the nft transaction ran.
  fake.faults.ipLine = /1\.2\.4\.0/;
  await assert.rejects(engine.apply(twoNetworks), /rolled back/);
  fake.faults = {};
  assert.deepEqual(nftRuns(fake, from), ["partial", "full"], "the roll back is the previous spec, whole");
  assert.deepEqual(sortedFirewall(fake), before);
  // The reconciler forgets after a failure; the next transaction is whole and converges.
  cache.forget();
  const next = fake.log.length;
  assert.equal((await engine.apply(twoNetworks)).inSync, true);
  assert.deepEqual(nftRuns(fake, next), ["full"]);
});

test("after a start, nft's monitor printing the agent's own whole-table transaction proves it listened: the next one is partial, unless anything else says no", async () => {
  /** A fresh cache whose nft monitor has printed nothing yet (the agent just started). */
  const fresh = () => {
    const fake = new FakeKernel(articleNode());
    const cache = new ReadCache({ readSysctl: async (name) => fake.state.sysctls[name] });
    listening(cache, { firewall: false });
    const engine = createEngine({ kernel: cache.wrap(fake), store: new MemoryStore() });
    return { fake, cache, engine };
  };
  /** The first transaction (whole), `between` after it, then the next edit's transaction. */
  const second = async (between: (cache: ReadCache) => void): Promise<string[]> => {
    const { fake, cache, engine } = fresh();
    assert.equal((await engine.apply(dualStackGatewayConfig("nftables"))).inSync, true);
    between(cache);
    cache.verified();
    const from = fake.log.length;
    assert.equal((await engine.apply(twoNetworks)).inSync, true);
    return nftRuns(fake, from);
  };
  const ownPrinted = (cache: ReadCache, table = "inet symroute"): void => {
    cache.firewallLine(`add table ${table}`);
    cache.firewallLine(`# new generation 2 by process ${OWN_PID} (nft)`);
  };
  assert.deepEqual(await second(ownPrinted), ["partial"]);
  assert.deepEqual(await second(() => undefined), ["full"], "the monitor printed nothing");
  assert.deepEqual(
    await second((c) => ownPrinted(c, "ip kube-proxy")),
    ["full"],
    "its transaction named no table of symroute's",
  );
  assert.deepEqual(
    await second((c) => c.firewallLine(`# new generation 2 by process ${OWN_PID} (nft)`)),
    ["full"],
    "a generation line alone (the transaction's lines lost)",
  );
  assert.deepEqual(
    await second((c) => {
      ownPrinted(c);
      c.firewallLine("add rule inet symroute pre counter");
      c.firewallLine(`# new generation 3 by process ${FOREIGN_PID} (nft)`);
    }),
    ["full"],
    "another process's transaction after it",
  );
  assert.deepEqual(
    await second((c) => {
      ownPrinted(c);
      c.monitorDown("firewall");
    }),
    ["full"],
    "the monitor stopped since",
  );
  assert.deepEqual(
    await second((c) => {
      ownPrinted(c);
      c.forget();
    }),
    ["full"],
    "forgotten (a resync, a failure)",
  );
});

test("a reconcile triggered only by the agent's own kernel events runs no apply; another process's change among them still runs one and is repaired", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped } = cached(fake);
  const engine = createEngine({ kernel: wrapped, store: new MemoryStore() });
  let applies = 0;
  let config = dualStackGatewayConfig("nftables");
  const reconciler = new Reconciler({
    engine: {
      ...engine,
      apply: (c, o) => {
        applies++;
        return engine.apply(c, o);
      },
    },
    source: {
      desired: async () => ({ ready: true, config, verdicts: [], refused: new Map() }),
      staleNote: () => "",
      converged: async () => undefined,
      cluster: undefined,
    } as unknown as ConfigSource,
    clock: new FakeClock(),
    logger: createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
    metrics: createMetrics(),
    lockWaitMs: 0,
    readCache: cache,
  });
  /** Whether a reconcile for `reasons` ran the engine's apply, and whether it changed the node. */
  const reconcile = async (...reasons: string[]): Promise<[boolean, boolean]> => {
    const before = applies;
    const outcome = await reconciler.reconcile(new Set(reasons));
    assert.equal(outcome.result, "ok");
    return [applies > before, outcome.result === "ok" && outcome.changed];
  };
  /** Lines as the agent's own apply leaves them: routing stamped before the reads that followed it. */
  const ownLines = (stamp: number): void => {
    cache.routingLine(stamped(stamp, "default via 1.2.3.1 dev ext0 table 20000 proto 201"));
    cache.firewallLine("add rule inet symroute pre counter");
    cache.firewallLine(`# new generation 5 by process ${OWN_PID} (nft)`);
  };

  const beforeStart = Date.now() - 1;
  assert.deepEqual(await reconcile("start"), [true, true]);
  ownLines(beforeStart);
  // The first run, without a record, read every front end (the iptables one is not kept).
  assert.deepEqual(await reconcile("kernel"), [true, false]);
  assert.deepEqual(await reconcile("kernel"), [false, false], "only the agent's own lines");
  assert.deepEqual(await reconcile("kernel", "file"), [true, false], "the config file changed too");

  // Another process deletes one of symroute's routes; its line comes among the agent's own.
  const routes = fake.state.routes;
  const owned = routes.findIndex((r) => r.table === 20000 && r.dst === "default");
  assert.ok(owned >= 0);
  fake.state = { ...fake.state, routes: routes.filter((_, i) => i !== owned) };
  ownLines(beforeStart);
  cache.routingLine(stamped(Date.now(), `Deleted ${JSON.stringify(routes[owned])}`));
  ownLines(beforeStart);
  assert.deepEqual(await reconcile("kernel"), [true, true], "the foreign change is repaired");
  assert.deepEqual(fake.state.routes.length, routes.length);
  assert.deepEqual(await reconcile("kernel"), [false, false]);

  // Another process's nft transaction on symroute's tables, among the agent's own.
  ownLines(beforeStart);
  cache.firewallLine("delete rule inet symroute pre handle 4");
  cache.firewallLine(`# new generation 6 by process ${FOREIGN_PID} (nft)`);
  assert.deepEqual(await reconcile("kernel"), [true, false]);
  assert.deepEqual(await reconcile("kernel"), [false, false]);

  // A monitor that stopped, a new configuration object, forget() (a resync): the apply runs.
  cache.monitorDown("routing");
  assert.deepEqual(await reconcile("kernel"), [true, false]);
  cache.routingLine(stamped(beforeStart, "[LINK]1: lo: <LOOPBACK,UP>"));
  assert.deepEqual(await reconcile("kernel"), [true, false], "its first line came after the kept read");
  assert.deepEqual(await reconcile("kernel"), [false, false]);
  config = { ...config };
  assert.deepEqual(await reconcile("kernel"), [true, false], "another configuration object");
  cache.forget();
  assert.deepEqual(await reconcile("kernel"), [true, false]);
  assert.deepEqual(await reconcile("kernel"), [false, false]);
});

test("after a partial transaction, verification takes the rewritten chains from what nft's monitor printed of it, and lists them when it cannot", async () => {
  let current = "";
  let target = "";
  const NFT_PID = 6100;
  const listedChains: string[] = [];
  const from: string[] = [];
  const kernel = {
    runNft: async (s: string) => {
      cache.ownProcess(NFT_PID);
      // A partial transaction leaves the tables as the whole-table script does.
      current = s.startsWith("table inet symroute {}\n") ? s : target;
    },
    readFirewall: async () => [{ backend: "nftables" as const, ...listingOf(current) }],
  } as unknown as Kernel;
  const cache = new ReadCache({
    onChainFrom: (f) => from.push(f),
    listNftChain: (family, chain) => listChainOf(current, listedChains, family, chain),
  });
  listening(cache, { routing: false });
  const wrapped = cache.wrap(kernel);
  let generation = 1;
  /** What `nft monitor` prints of a transaction to `script` of the chains in `labels`, as nft 1.0.6 does. */
  const print = (script: string, labels: readonly string[], pid = NFT_PID, drop?: string): void => {
    const chains = scriptChains(script);
    for (const label of labels) {
      const c = chains?.get(label);
      assert.ok(c !== undefined, label);
      const rules = c.text
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("type "));
      for (const [i, rule] of rules.entries())
        if (rule !== drop)
          // nft 1.0.6 prints a handle before some rules' text.
          cache.firewallLine(
            `add rule ${c.family} symroute ${c.chain} ${i === 0 ? "" : `handle ${i + 40} `}${rule.replace(/\bcounter\b/, "counter packets 0 bytes 0")}`,
          );
    }
    cache.firewallLine(`# new generation ${++generation} by process ${pid} (nft)`);
  };
  const step = async (
    chains: Record<string, string>,
    probe = "ext0",
    before?: () => void,
    pools?: string,
  ): Promise<{ listed: string[]; from: string[]; script: string }> => {
    target = script(chains, probe, pools);
    listedChains.length = 0;
    from.length = 0;
    await wrapped.runNft(target);
    before?.();
    assert.deepEqual(await wrapped.readFirewall(["nftables"]), [
      { backend: "nftables", ...listingOf(target) },
    ]);
    cache.verified();
    return { listed: [...listedChains], from: [...from], script: target };
  };

  // The first: whole, listed whole; the second: whole (the first was not verified before it ran).
  await step({ pre: 'counter comment "pre"', c0x1: 'ct mark set 1 comment "n0"' });
  await step({ pre: 'counter comment "pre"', c0x1: 'ct mark set 1 comment "n0"' }, "ext0");
  // Partial: pre changed, c0x2 new, the ARP chain changed. Printed: none listed.
  const printed = await step(
    {
      pre: 'counter accept comment "pre"',
      c0x1: 'ct mark set 1 comment "n0"',
      c0x2: 'ct mark set 2 comment "n1"',
    },
    "ext1",
    () => print(target, ["pre", "c0x2", "arp:probes"]),
  );
  assert.deepEqual([printed.listed, printed.from], [[], ["monitor", "monitor", "monitor"]]);

  // A rule's line lost: that chain is listed, the others taken from the monitor.
  const lost = await step(
    { pre: 'counter comment "pre"', c0x1: 'ct mark set 1 comment "n0"', c0x2: 'ct mark set 2 comment "n1"' },
    "ext0",
    () => print(target, ["pre", "arp:probes"], NFT_PID, 'counter comment "pre"'),
  );
  assert.deepEqual(lost.listed, ["inet pre"]);
  assert.deepEqual([...lost.from].sort(), ["listed", "monitor"]);

  // A pool changed in the netdev guard, a base chain: its declaration as listed before.
  const guard = await step(
    { pre: 'counter comment "pre"', c0x1: 'ct mark set 1 comment "n0"', c0x2: 'ct mark set 2 comment "n1"' },
    "ext0",
    () => print(target, ["guard_ext0"]),
    "1.2.0.0/16",
  );
  assert.deepEqual([guard.listed, guard.from], [[], ["monitor"]]);

  // The printing never comes (a monitor that lost it): listed after the wait.
  const never = await step(
    { pre: 'counter accept comment "pre"', c0x1: 'ct mark set 1 comment "n0"' },
    "ext0",
  );
  assert.deepEqual(never.listed, ["inet pre", "netdev guard_ext0"]);

  // Another transaction's lines came after the agent's, without their generation line yet: listed.
  const pending = await step(
    { pre: 'counter comment "pre"', c0x1: 'ct mark set 1 comment "n0"' },
    "ext0",
    () => {
      print(target, ["pre"]);
      cache.firewallLine("add rule inet symroute pre counter");
    },
  );
  assert.deepEqual(pending.listed, ["inet pre"]);
  cache.firewallLine(`# new generation ${++generation} by process ${OWN_PID} (nft)`);

  // The printing of the transaction arrives while verification waits for it.
  target = script({ pre: 'counter accept comment "pre"', c0x1: 'ct mark set 1 comment "n0"' }, "ext0");
  listedChains.length = 0;
  await wrapped.runNft(target);
  const read = wrapped.readFirewall(["nftables"]);
  print(target, ["pre"]);
  assert.deepEqual(await read, [{ backend: "nftables", ...listingOf(target) }]);
  assert.deepEqual(listedChains, []);
});

test("verification waits again while nft's monitor is still printing the transaction (under load), and lists the chains once the lines stop", async () => {
  let current = "";
  let target = "";
  const NFT_PID = 6200;
  const listedChains: string[] = [];
  const from: string[] = [];
  const kernel = {
    runNft: async (s: string) => {
      cache.ownProcess(NFT_PID);
      current = s.startsWith("table inet symroute {}\n") ? s : target;
    },
    readFirewall: async () => [{ backend: "nftables" as const, ...listingOf(current) }],
  } as unknown as Kernel;
  // The waits' timers, fired by the test: each fire is PRINT_WAIT_MS gone without the printing.
  const timers: (() => void)[] = [];
  let scheduled: (() => void) | undefined;
  const nextTimer = (): Promise<void> =>
    timers.length > 0 ? Promise.resolve() : new Promise((resolve) => (scheduled = resolve));
  const fire = (): void => timers.shift()?.();
  const cache = new ReadCache({
    onChainFrom: (f) => from.push(f),
    listNftChain: (family, chain) => listChainOf(current, listedChains, family, chain),
    timer: (_ms, fired) => {
      timers.push(fired);
      scheduled?.();
      scheduled = undefined;
      return () => {
        const at = timers.indexOf(fired);
        if (at >= 0) timers.splice(at, 1);
      };
    },
  });
  listening(cache, { routing: false });
  const wrapped = cache.wrap(kernel);
  let generation = 1;
  /** What `nft monitor` prints of the chains in `labels` of `script` (without the generation line). */
  const printed = (s: string, labels: readonly string[]): string[] =>
    labels.flatMap((label) => {
      const c = scriptChains(s)?.get(label);
      assert.ok(c !== undefined, label);
      return c.text
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("type "))
        .map((rule) => `add rule ${c.family} symroute ${c.chain} ${rule}`);
    });
  const generationLine = (): string => `# new generation ${++generation} by process ${NFT_PID} (nft)`;
  const labels = ["pre", "c0x2", "arp:probes"];
  const chainsBefore = { pre: 'counter comment "pre"', c0x1: 'ct mark set 1 comment "n0"' };
  const chainsAfter = {
    pre: 'counter accept comment "pre"',
    c0x1: 'ct mark set 1 comment "n0"',
    c0x2: 'ct mark set 2 comment "n1"',
  };
  /** Two whole-table transactions printed at once, the second verified: the next one is partial. */
  const settle = async (chains: Record<string, string>): Promise<void> => {
    for (let i = 0; i < 2; i++) {
      target = script(chains);
      await wrapped.runNft(target);
      for (const line of printed(target, [...(scriptChains(target)?.keys() ?? [])])) cache.firewallLine(line);
      cache.firewallLine(generationLine());
      assert.deepEqual(await wrapped.readFirewall(["nftables"]), [
        { backend: "nftables", ...listingOf(target) },
      ]);
      cache.verified();
    }
  };

  // The printing comes in two parts, the second after the first wait ran out: waited for, none listed.
  await settle(chainsBefore);
  target = script(chainsAfter, "ext1");
  listedChains.length = 0;
  from.length = 0;
  await wrapped.runNft(target);
  const lines = printed(target, labels);
  const read = wrapped.readFirewall(["nftables"]);
  await nextTimer();
  for (const line of lines.slice(0, 2)) cache.firewallLine(line);
  fire();
  await nextTimer();
  for (const line of lines.slice(2)) cache.firewallLine(line);
  cache.firewallLine(generationLine());
  assert.deepEqual(await read, [{ backend: "nftables", ...listingOf(target) }]);
  assert.deepEqual([listedChains, from], [[], ["monitor", "monitor", "monitor"]]);
  cache.verified();

  // The printing stops half way (a wait with no line about symroute's tables): the chains are listed.
  await settle(chainsBefore);
  target = script(chainsAfter, "ext1");
  listedChains.length = 0;
  from.length = 0;
  await wrapped.runNft(target);
  const stalled = wrapped.readFirewall(["nftables"]);
  await nextTimer();
  for (const line of printed(target, labels).slice(0, 2)) cache.firewallLine(line);
  fire();
  await nextTimer();
  // Another table's line (kube-proxy's) is no sign that symroute's printing is still coming.
  cache.firewallLine("add rule ip kube-proxy services counter");
  fire();
  assert.deepEqual(await stalled, [{ backend: "nftables", ...listingOf(target) }]);
  assert.deepEqual(listedChains, ["inet pre", "inet c0x2", "arp probes"]);
  assert.equal(timers.length, 0);
});

test("after a whole-table transaction, verification takes every chain from what nft's monitor printed of it, lists what the printing cannot prove, and catches a rule not as rendered", async () => {
  /** What the kernel holds: the script it applied (the agent's, unless a test says otherwise). */
  let current = "";
  let applied: ((script: string) => string) | undefined;
  let fullReads = 0;
  const NFT_PID = 6200;
  const listedChains: string[] = [];
  const from: string[] = [];
  const kernel = {
    runNft: async (s: string) => {
      cache.ownProcess(NFT_PID);
      current = applied?.(s) ?? s;
    },
    readFirewall: async () => {
      fullReads++;
      return [{ backend: "nftables" as const, ...listingOf(current) }];
    },
  } as unknown as Kernel;
  const cache = new ReadCache({
    onChainFrom: (f) => from.push(f),
    listNftChain: (family, chain) => listChainOf(current, listedChains, family, chain),
  });
  listening(cache, { routing: false });
  const wrapped = cache.wrap(kernel);
  let generation = 1;
  /**
   * What `nft monitor` prints of a whole-table transaction, as nft 1.0.6 does: each table added,
   * deleted and added again, each chain's `add chain` line (a base chain's declaration without a
   * netdev chain's device), its rules (a handle before some), then the generation line.
   */
  const print = (script: string): void => {
    const chains = scriptChains(script);
    assert.ok(chains !== undefined);
    const rules: string[] = [];
    for (const family of ["inet", "netdev", "arp"]) {
      cache.firewallLine(`add table ${family} symroute`);
      // A line the transaction added before it deleted the table: not in the table after it.
      const some = [...chains.values()].find((c) => c.family === family)?.chain ?? "none";
      cache.firewallLine(`add rule ${family} symroute ${some} counter comment "gone"`);
      cache.firewallLine(`delete table ${family} symroute`);
      cache.firewallLine(`add table ${family} symroute`);
      for (const c of chains.values()) {
        if (c.family !== family) continue;
        const lines = c.text.split("\n").map((l) => l.trim());
        const declaration = lines[0]?.startsWith("type ") === true ? lines[0] : undefined;
        cache.firewallLine(
          `add chain ${family} symroute ${c.chain}${declaration === undefined ? "" : ` { ${declaration.replace(/ device "[^"]*"/, "")} }`}`,
        );
        for (const [i, rule] of lines.filter((l) => l !== "" && l !== declaration).entries())
          rules.push(
            `add rule ${family} symroute ${c.chain} ${i === 0 ? "" : `handle ${i + 40} `}${rule.replace(/\bcounter\b/, "counter packets 0 bytes 0")}`,
          );
      }
      for (const r of rules.splice(0)) cache.firewallLine(r);
    }
    cache.firewallLine(`# new generation ${++generation} by process ${NFT_PID} (nft)`);
  };
  const step = async (
    chains: Record<string, string>,
    printing: "printed" | "lost",
  ): Promise<{ listed: string[]; from: string[]; read: unknown; reads: number }> => {
    const target = script(chains);
    listedChains.length = 0;
    from.length = 0;
    fullReads = 0;
    await wrapped.runNft(target);
    if (printing === "printed") print(current);
    const read = await wrapped.readFirewall(["nftables"]);
    return { listed: [...listedChains], from: [...from], read, reads: fullReads };
  };
  const first = { pre: 'counter comment "pre"', c0x1: 'ct mark set 1 comment "n0"' };

  // The first since a start (no listing before it): every chain from the printing but the netdev
  // guard, whose device the printing leaves out: that one is listed.
  cache.forget();
  const whole = await step(first, "printed");
  assert.deepEqual(whole.read, [{ backend: "nftables", ...listingOf(script(first)) }]);
  assert.deepEqual([whole.listed, whole.reads], [["netdev guard_ext0"], 0]);
  assert.deepEqual([...whole.from].sort(), ["listed", "monitor", "monitor", "monitor"]);

  // Whole again (not verified in between), with the listing after the first as its basis: the
  // changed chains from the printing, the guard's declaration as listed before (the same text).
  const second = {
    pre: 'counter accept comment "pre"',
    c0x1: 'ct mark set 1 comment "n0"',
    c0x2: 'ct mark set 2 comment "n1"',
  };
  const again = await step(second, "printed");
  assert.deepEqual(again.read, [{ backend: "nftables", ...listingOf(script(second)) }]);
  assert.deepEqual([again.listed, again.reads], [[], 0]);

  // The kernel holds a rule other than the script's (a transaction not applied as rendered): the
  // printing shows it, that chain is listed, and the read is what the kernel holds, not the script.
  applied = (s) => s.replace('ct mark set 2 comment "n1"', 'ct mark set 3 comment "other"');
  cache.forget();
  const wrong = await step(second, "printed");
  assert.deepEqual(wrong.listed, ["inet c0x2", "netdev guard_ext0"]);
  assert.deepEqual(wrong.read, [{ backend: "nftables", ...listingOf(current) }]);
  assert.notDeepEqual(wrong.read, [{ backend: "nftables", ...listingOf(script(second)) }]);
  applied = undefined;

  // No printing (a monitor that lost it) and no listing before: listed whole after the wait.
  cache.forget();
  const lost = await step(first, "lost");
  assert.deepEqual([lost.listed, lost.from, lost.reads], [[], [], 1]);
  assert.deepEqual(lost.read, [{ backend: "nftables", ...listingOf(script(first)) }]);
});

test("the wall clock stepped back (NTP, a VM's clock set): a change ip stamps after the step, before the kept read's start, still drops the read", async () => {
  const fake = new FakeKernel(articleNode());
  let mono = 1_000_000;
  let wall = Date.UTC(2026, 11, 7, 12, 0, 0);
  const reads: string[] = [];
  const cache = new ReadCache({
    readSysctl: async (name) => fake.state.sysctls[name],
    onRead: (from) => reads.push(from),
    now: () => mono,
    wallNow: () => wall,
  });
  cache.ownProcess(OWN_PID);
  cache.routingLine(stamped(wall - 60_000, "[LINK]1: lo: <LOOPBACK,UP>"));
  cache.firewallLine(`# new generation 1 by process ${OWN_PID} (nft)`);
  const wrapped = cache.wrap(fake);
  const engine = createEngine({ kernel: wrapped, store: new MemoryStore() });
  const config = dualStackGatewayConfig("nftables");
  await engine.apply(config);
  const converged = structuredClone(fake.state);
  const owned = fake.state.rules.find(
    (r) => r.protocol !== undefined && r.priority !== undefined && r.table !== 254,
  );
  assert.ok(owned !== undefined);
  // 10 s later by both clocks, then the wall clock is set back 2 s; another process deletes a rule
  // and ip stamps its line by the wall clock: before the kept read started.
  mono += 10_000;
  wall += 10_000 - 2_000;
  fake.state = { ...fake.state, rules: fake.state.rules.filter((r) => r !== owned) };
  cache.routingLine(stamped(wall, `[RULE]Deleted ${owned.priority}:\tfrom all lookup ${owned.table}`));
  const repaired = await engine.apply(config);
  assert.equal(repaired.applied, true, "the rule's deletion was seen");
  assert.deepEqual(fake.state.rules, converged.rules);
  // The next reads, made after the step, are kept again.
  mono += 1_000;
  wall += 1_000;
  reads.length = 0;
  assert.equal((await engine.plan(config)).inSync, true);
  assert.ok(reads.includes("cache"), reads.join(" "));
});

test("a line of a monitor already gone (read after its exit) drops kept reads but proves no listening", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  const read = () => sourceOf(reads, () => wrapped.readNode({ sysctls: [], firewalls: [] }));
  assert.equal(await read(), "kernel");
  assert.equal(await read(), "cache");
  cache.monitorDown("routing");
  cache.routingLine(stamped(Date.now() - 60_000, "[RULE]1000:\tfrom all lookup 100"), false);
  assert.equal(await read(), "kernel");
  assert.equal(await read(), "kernel", "no monitor has shown that it listens");
  cache.routingLine(stamped(Date.now() - 60_000, "[LINK]1: lo: <LOOPBACK,UP>"));
  assert.equal(await read(), "kernel");
  assert.equal(await read(), "cache", "the restarted monitor's line");
});
