// A roll back that meets a failure goes on: every other undo step is tried, and what the error
// lists as still to undo is exactly what failed or was held back. One exception keeps the node
// safe: while conf.all's rp_filter cannot be raised back, no interface's is lowered (its effective
// value, max(all, own), would fall below what it was before the apply).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import { isSymrouteError, type SymrouteError } from "../../src/model/errors.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { MangleKernel } from "../support/mangle-kernel.ts";
import type { Family } from "../../src/model/address.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import { configFrom, dualStackGatewayConfig } from "../support/config.ts";

const PUBLIC = dualStackGatewayConfig("nftables");

function setup() {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  return { kernel, store, engine: createEngine({ kernel, store }), initial: structuredClone(kernel.state) };
}

/** The apply's nft transaction is refused; from then on, `sysctl` cannot be written (the roll back's). */
function failFirewallThenSysctl(kernel: FakeKernel, sysctl: string): void {
  kernel.faults.nft = true;
  kernel.faults.beforeStep = (step) => {
    if (step === "nft") kernel.faults.sysctl = sysctl;
  };
}

/** The apply's error, and what it lists as still to undo. */
async function failedApply(run: Promise<unknown>): Promise<{ error: SymrouteError; stillToUndo: string[] }> {
  let error: unknown;
  await assert.rejects(run, (e: unknown) => {
    error = e;
    return isSymrouteError(e);
  });
  const failure = error as SymrouteError;
  const stillToUndo = failure.details.flatMap((d) => /still to undo: (.*)$/.exec(d)?.[1] ?? []);
  return { error: failure, stillToUndo };
}

test("a sysctl the roll back cannot write: every other undo step runs, and that write is all that is left", async () => {
  const { kernel, store, engine, initial } = setup();
  failFirewallThenSysctl(kernel, "net/ipv4/conf/lo/rp_filter");
  const { error, stillToUndo } = await failedApply(engine.apply(PUBLIC));
  assert.match(error.message, /^apply failed and its roll back was incomplete: nft -f - failed/);
  assert.deepEqual(stillToUndo, ["sysctl net.ipv4.conf.lo.rp_filter 1 -> 0"]);
  assert.ok(error.details.some((d) => /1 change of this apply is still on the node/.test(d)));
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.sysctls, {
    ...initial.sysctls,
    "net/ipv4/conf/lo/rp_filter": "1",
  });
  assert.equal(store.state?.inProgress, true);
  // Once the sysctl can be written, the next apply converges from the node as it is.
  kernel.faults = {};
  assert.equal((await engine.apply(PUBLIC)).applied, true);
  assert.equal((await engine.plan(PUBLIC)).inSync, true);
});

test("conf.all the roll back cannot raise back: no interface is lowered, routing is still undone", async () => {
  const { kernel, engine, initial } = setup();
  failFirewallThenSysctl(kernel, "net/ipv4/conf/all/rp_filter");
  const { error, stillToUndo } = await failedApply(engine.apply(PUBLIC));
  assert.match(error.message, /roll back was incomplete/);
  assert.deepEqual(stillToUndo.sort(), [
    "sysctl net.ipv4.conf.all.rp_filter 0 -> 1",
    "sysctl net.ipv4.conf.default.rp_filter 1 -> 0",
    "sysctl net.ipv4.conf.eth0.rp_filter 1 -> 0",
    "sysctl net.ipv4.conf.lo.rp_filter 1 -> 0",
  ]);
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  // Every interface's effective rp_filter is what it was before the apply (1), ext0's excepted.
  const sysctl = (name: string) => kernel.state.sysctls[`net/ipv4/conf/${name}/rp_filter`];
  assert.equal(sysctl("all"), "0");
  for (const name of ["default", "lo", "eth0"]) assert.equal(sysctl(name), "1", name);
});

/** Every firewall object of symroute's on the fake node, front end by front end, and its ipsets. */
const firewallOf = (kernel: FakeKernel): string[] => [
  ...kernel.state.firewall.flatMap((f) => f.ruleKeys.map((k) => `${f.backend} ${k}`)).sort(),
  ...[...kernel.ipsets.keys()].sort(),
];

test("the ip batch starts before the firewall half is planned: a failure planning it rolls the batch back", async () => {
  const { kernel, store, engine, initial } = setup();
  // The firewall's read names a set symroute could not have made: the firewall half's renderer
  // refuses to write it (the token guard), after the ip batches started.
  kernel.state = { ...kernel.state, firewall: [{ backend: "iptables", ruleKeys: ["ipset:symroute-a.b"] }] };
  const { error } = await failedApply(engine.apply(dualStackGatewayConfig("iptables")));
  assert.match(
    error.message,
    /^apply failed and was rolled back: refusing to render ipset name "symroute-a\.b"/,
  );
  assert.ok(
    kernel.log.some((l) => l.tool === "ip -4 -batch" && /^rule add /m.test(l.input)),
    "the batch ran before the failure",
  );
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
  assert.deepEqual(firewallOf(kernel), ["iptables ipset:symroute-a.b"]);
  // The firewall of the failed apply was never in force: the record does not say it was.
  assert.equal(store.state?.firewallSpec, undefined);
});

test("a roll back does not record the failed apply's firewall: the next roll back does not put it on the node", async () => {
  const { kernel, store, engine } = setup();
  kernel.faults.ipLine = /^rule add/;
  for (const attempt of [1, 2]) {
    // The firewall transaction runs beside the failing ip batch, then is undone.
    await failedApply(engine.apply(PUBLIC));
    assert.deepEqual(firewallOf(kernel), [], `after failed apply ${attempt}`);
    assert.equal(store.state?.firewallSpec, undefined, `record after failed apply ${attempt}`);
  }
});

test("a rolled back move of front end: the firewall is as before (its ARP probes too), and the next move leaves nothing of the old one", async () => {
  const { kernel, store, engine } = setup();
  await engine.apply(dualStackGatewayConfig("iptables"));
  const before = firewallOf(kernel);
  assert.ok(
    before.some((k) => k.startsWith("iptables arp:")),
    "the iptables front end's ARP probes",
  );
  // The move comes with a new network, whose route ip refuses.
  const moved = configFrom(`firewall: nftables
networks:
  - { name: public, addresses: [1.2.3.0/24, "2001:db8:100::/64"], interface: ext0, gateway: [1.2.3.1, "2001:db8:100::1"] }
  - { name: second, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1 }
`);
  kernel.faults.ipLine = /^route add .*1\.2\.4\./;
  await failedApply(engine.apply(moved));
  assert.deepEqual(firewallOf(kernel), before);
  assert.equal(store.state?.firewall, "iptables");
  kernel.faults = {};
  assert.equal((await engine.apply(moved)).applied, true);
  assert.deepEqual(
    firewallOf(kernel).filter((k) => !k.startsWith("nftables ")),
    [],
    "nothing of the iptables front end is left",
  );
  assert.equal((await engine.plan(moved)).inSync, true);
});

/** `count` gateway networks on ext0, IPv4, with the rule band given. */
const networks = (count: number, band = "{from: 1000, to: 1999}"): ReturnType<typeof configFrom> =>
  configFrom(`firewall: nftables
rulePriorities: ${band}
networks:
${Array.from({ length: count }, (_, i) => `  - { name: n${i}, addresses: [1.2.${i}.0/24], interface: ext0, gateway: 1.2.${i}.1 }`).join("\n")}
`);

test("a roll back puts the rules it deleted back in their order (a move of the band, a delete)", async () => {
  const { kernel, engine } = setup();
  await engine.apply(networks(5));
  const applied = structuredClone(kernel.state.rules);
  assert.ok(applied.filter((r) => r.priority === 1001).length === 5, "one list of 5 at 1001");
  kernel.faults.nft = true;
  // Every rule moves to the new band (added, then the old ones deleted); nft then refuses.
  await failedApply(engine.apply(networks(6, "{from: 3000, to: 3999}")));
  assert.deepEqual(kernel.state.rules, applied);
  await failedApply(engine.remove());
  assert.deepEqual(kernel.state.rules, applied);
});

test("a roll back that deleted the VLAN link it created does not record it: a link of that name made later is not symroute's", async () => {
  const { kernel, store, engine } = setup();
  kernel.faults.ipLine = /^rule add/;
  const { error } = await failedApply(
    engine.apply(
      configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: eth0.100, vlan: {parent: eth0, id: 100}, gateway: 1.2.3.1 }
`),
    ),
  );
  assert.match(error.message, /was rolled back/);
  assert.ok(!kernel.state.links.some((l) => l.ifname === "eth0.100"), "the roll back deleted the link");
  assert.deepEqual(store.state?.createdLinks, []);
  // Someone else makes eth0.100; the network now names it without `vlan`.
  kernel.faults = {};
  kernel.state = {
    ...kernel.state,
    links: [
      ...kernel.state.links,
      { ifname: "eth0.100", ifindex: 9, up: true, kind: "vlan", link: "eth0", vlanId: 100 },
    ],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/eth0.100/rp_filter": "1" },
  };
  const report = await engine.apply(
    configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: eth0.100, gateway: 1.2.3.1 }
`),
  );
  assert.equal(report.applied, true);
  assert.ok(!report.changes.some((c) => c.kind === "link"), "no link is deleted");
  assert.ok(kernel.state.links.some((l) => l.ifname === "eth0.100"));
});

test("a roll back records the sysctl values it learnt only for writes still on the node: a value set later by someone else is not symroute's to restore", async () => {
  const { kernel, store, engine, initial } = setup();
  const lo = "net/ipv4/conf/lo/rp_filter";
  // Incomplete: the write the roll back could not undo keeps its value from before symroute.
  failFirewallThenSysctl(kernel, lo);
  await failedApply(engine.apply(PUBLIC));
  assert.deepEqual(store.state?.previousSysctls, { [lo]: initial.sysctls[lo] });
  kernel.faults = {};
  await engine.remove(undefined);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);

  // Complete: every sysctl is back, and none is recorded.
  kernel.faults.nft = true;
  const { error } = await failedApply(engine.apply(PUBLIC));
  assert.match(error.message, /was rolled back/);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
  assert.deepEqual(store.state?.previousSysctls, {});
  // The operator sets one of them; a delete leaves it so.
  kernel.faults = {};
  kernel.state = { ...kernel.state, sysctls: { ...kernel.state.sysctls, [lo]: "2" } };
  await engine.remove(undefined);
  assert.equal(kernel.state.sysctls[lo], "2");
});

test("a commit that fails after its clean-up dropped the iptables mangle table: the roll back that makes it again records it", async () => {
  const kernel = new MangleKernel(articleNode());
  const store = new MemoryStore();
  const engine = createEngine({ kernel, store });
  const withFirewall = (firewall: string) =>
    configFrom(
      `firewall: ${firewall}\nnetworks:\n  - {name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}\n`,
    );
  await engine.apply(withFirewall("iptables"));
  assert.deepEqual(store.state?.iptablesTablesCreated, [4]);
  // The move's commit drops the emptied mangle table, then its write fails (a full disk, once).
  const write = store.write.bind(store);
  let failed = false;
  store.write = async (state: SavedState) => {
    if (state.inProgress !== true && !failed) {
      failed = true;
      throw new Error("ENOSPC (injected)");
    }
    await write(state);
  };
  await assert.rejects(engine.apply(withFirewall("nftables")), /was rolled back/);
  assert.ok(kernel.mangle.has(4), "the roll back's iptables-restore made the mangle table again");
  assert.deepEqual(store.state?.iptablesTablesCreated, [4], "and the record says symroute made it");
  await engine.remove(undefined);
  assert.deepEqual([...kernel.mangle], [], "delete drops it");
});

test("an ip6tables-restore the tool refused made no mangle table: the record does not name one", async () => {
  /** Refuses every ip6tables-restore once `refuseIpv6` is set, as the tool refuses a bad payload. */
  class RefusingIpv6 extends MangleKernel {
    refuseIpv6 = false;
    override async runIptablesRestore(family: Family, payload: string): Promise<void> {
      this.faults.iptables = family === 6 && this.refuseIpv6;
      try {
        await super.runIptablesRestore(family, payload);
      } finally {
        this.faults.iptables = false;
      }
    }
  }
  const kernel = new RefusingIpv6(articleNode());
  const store = new MemoryStore();
  const engine = createEngine({ kernel, store });
  const v4 = "  - {name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}\n";
  const v6 = "  - {name: b, addresses: ['2001:db8:5::/64'], interface: ext0, gateway: '2001:db8:5::1'}\n";
  await engine.apply(configFrom(`firewall: iptables\nnetworks:\n${v4}`));
  assert.deepEqual(store.state?.iptablesTablesCreated, [4]);
  // The IPv6 network's first ip6tables-restore is refused (the saved front end stays iptables).
  kernel.refuseIpv6 = true;
  await assert.rejects(
    engine.apply(configFrom(`firewall: iptables\nnetworks:\n${v4}${v6}`)),
    /was rolled back/,
  );
  assert.deepEqual([...kernel.mangle], [4], "no IPv6 mangle table was made");
  assert.deepEqual(store.state?.iptablesTablesCreated, [4], "and the record names only the IPv4 one");
});

test("a rolled back move of the rule band records the band of before, also when the roll back is incomplete: delete without a config looks at foreign rules there", async () => {
  const { kernel, store, engine } = setup();
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "ext1", ifindex: 8, up: true }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/ext1/rp_filter": "1" },
  };
  await engine.apply(networks(2));
  assert.deepEqual(store.state?.rulePriorities, { from: 1000, to: 1999 });
  // The move comes with a network on ext1 (its rp_filter is lowered); nft refuses, and ext1's value
  // cannot be written back: the roll back is incomplete.
  const moved = configFrom(`firewall: nftables
rulePriorities: {from: 3000, to: 3999}
networks:
  - { name: n0, addresses: [1.2.0.0/24], interface: ext0, gateway: 1.2.0.1 }
  - { name: n1, addresses: [1.2.1.0/24], interface: ext0, gateway: 1.2.1.1 }
  - { name: b, addresses: [5.6.7.0/24], interface: ext1, gateway: 5.6.7.1 }
`);
  failFirewallThenSysctl(kernel, "net/ipv4/conf/ext1/rp_filter");
  const { error } = await failedApply(engine.apply(moved));
  assert.match(error.message, /roll back was incomplete/);
  assert.deepEqual(
    kernel.state.rules.filter((r) => r.priority >= 3000 && r.priority <= 3999).map((r) => r.priority),
    [],
    "every rule is back in the band of before",
  );
  assert.deepEqual(store.state?.rulePriorities, { from: 1000, to: 1999 });
  // Another tool's rule in that band: the delete without a config says so.
  kernel.faults = {};
  kernel.state = {
    ...kernel.state,
    rules: [...kernel.state.rules, { family: 4, priority: 1500, action: "lookup", table: 77 }],
  };
  const report = await engine.remove(undefined);
  assert.ok(
    report.warnings.some((w) =>
      /priority 1500 lookup 77 is not symroute's but sits in its priority band 1000-1999/.test(w),
    ),
    report.warnings.join("\n"),
  );
});
