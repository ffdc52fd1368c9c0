// The real CLI in a fresh namespace, iptables front end: new connections are classified by one
// ipset lookup (hash:net,iface), a new connection gets its network's value in the ct mark while
// another component's bit outside symroute's mask survives, an element removed from the set is
// drift that the next apply repairs, the rules do not grow with the networks, and delete returns the
// node to its exact starting dump, sets included. Each of symroute's rules in mangle PREROUTING
// starts with a test, and the rules of the layouts before, found on a node, go with the next apply.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createNode, dumpNamespace, e2eUnavailable } from "../support/netns.ts";
import { configDir, writeConfigFile } from "../support/netns.ts";
import { ctMarkOf, FOREIGN_BIT, prepareForeignMark, sendFlow } from "../support/ct-mark.ts";
import { keyOf, knownJumps } from "../../src/model/firewall.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-ipset-");
const CONFIG = writeConfigFile(
  dir,
  "three.yaml",
  `firewall: iptables
podCIDRs: [10.112.0.0/12]
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: blue, addresses: [5.6.7.0/24], interface: ext0, gateway: 5.6.7.1 }
  - { name: green, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1 }
`,
);
const many = (n: number): string =>
  writeConfigFile(
    dir,
    `many-${n}.yaml`,
    `firewall: iptables
networks:
${Array.from(
  { length: n },
  (_, i) => `  - { name: n${i}, addresses: [100.64.${i}.0/24], interface: ext0, gateway: 100.64.${i}.1 }`,
).join("\n")}
`,
  );

// Before mangle (-150): kube-proxy's masquerade bit; after it: the packets whose mark is that bit alone.
const PACKET_MARK_PROBE = `table inet probe {
  counter kube_bit_alone {}
  chain before {
    type filter hook prerouting priority -170; policy accept;
    udp dport 4000-4002 meta mark set meta mark or 0x4000
  }
  chain after {
    type filter hook prerouting priority -140; policy accept;
    udp dport 4000-4002 meta mark 0x4000 counter name kube_bit_alone
  }
}
`;

test(
  "iptables: one ipset lookup classifies; other bits of the ct mark survive; set drift is repaired; delete restores the dump",
  { skip },
  (t) => {
    const node = createNode(t);
    prepareForeignMark(node);
    const start = dumpNamespace(node.name);
    // kube-proxy's bit in the packet mark before symroute's classify, and a count after it of the
    // packets whose mark is that bit alone: the one set lookup's hit leaves symroute's bits clear
    // again, and neither a hit nor a miss touches another component's bits.
    node.exec(["nft", "-f", "-"], PACKET_MARK_PROBE);

    const plan = node.symroute(["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(plan.code, 2, plan.stderr);
    const report = JSON.parse(plan.stdout) as {
      classify: { form: string; size: number };
      ipsets: { name: string; purpose: string; family: number; elements: number }[];
      networks: { name: string; mark?: number }[];
    };
    assert.equal(report.classify.form, "set");
    assert.equal(report.classify.size, 3);
    assert.deepEqual(
      report.ipsets.map((s) => [s.purpose, s.family, s.elements]),
      [
        ["classify", 4, 3],
        ["guard", 4, 3],
      ],
    );
    const text = node.symroute(["plan", "-c", CONFIG]);
    assert.match(text.stdout, /classify new connections \(iptables\): set, one ipset lookup/);
    assert.match(text.stdout, /ipset symroute-c4-[0-9a-f]{8} \(hash:net,iface, IPv4, 3 elements\)/);

    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    const classifySet = report.ipsets.find((s) => s.purpose === "classify")?.name as string;
    const saved = node.exec(["ipset", "list", "-o", "save", classifySet]).stdout;
    assert.equal(saved.split("\n").filter((l) => l.startsWith("add ")).length, 3, saved);

    // A new flow to blue: blue's value in the ct mark, the other component's bit kept.
    const blue = report.networks.find((n) => n.name === "blue")?.mark as number;
    const markOf = (port: number): number => {
      sendFlow(node, port);
      return ctMarkOf(node, port).mark;
    };
    assert.equal(markOf(4000), FOREIGN_BIT | blue);

    // Drift: blue's element gone from the set. plan sees it (by content), apply puts it back.
    node.exec(["ipset", "del", classifySet, "5.6.7.0/24,ext0"]);
    assert.equal(markOf(4001), FOREIGN_BIT, "without the element, the flow is not blue's");
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 2);
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
    assert.equal(markOf(4002), FOREIGN_BIT | blue);
    const probe = node.exec(["nft", "-j", "list", "counter", "inet", "probe", "kube_bit_alone"]).stdout;
    assert.match(probe, /"packets": 3\b/, "3 new flows (2 hits, 1 miss) left with the packet mark 0x4000");
    node.exec(["nft", "delete", "table", "inet", "probe"]);

    const deleted = node.symroute(["delete", "-c", CONFIG]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(node.exec(["ipset", "list", "-n"]).stdout.trim(), "", "no set left");
    assert.equal(dumpNamespace(node.name), start);
  },
);

test("iptables: 1 and 50 networks give the same number of rules in symroute's chains", { skip }, (t) => {
  const node = createNode(t);
  const rules = (): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const tool of ["iptables-save", "ip6tables-save"]) {
      for (const line of node.exec([tool, "-t", "mangle"]).stdout.split("\n")) {
        const chain = /^-A (SYMROUTE-\S+)/.exec(line)?.[1];
        if (chain !== undefined) counts.set(`${tool} ${chain}`, (counts.get(`${tool} ${chain}`) ?? 0) + 1);
      }
    }
    return counts;
  };
  const elements = (): number =>
    node
      .exec(["ipset", "save"])
      .stdout.split("\n")
      .filter((l) => l.startsWith("add symroute-")).length;
  assert.equal(node.symroute(["apply", "-c", many(1)]).code, 0);
  const one = rules();
  assert.equal(elements(), 2); // classify and the guard's exemption
  const applied = node.symroute(["apply", "-c", many(50)]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.deepEqual(rules(), one);
  assert.equal(elements(), 100);
  assert.equal(one.get("iptables-save SYMROUTE-CLASSIFY"), 4); // the lookup, the miss test, save, clear
  assert.equal(node.symroute(["delete", "-c", many(50)]).code, 0);
  assert.equal(node.exec(["ipset", "list", "-n"]).stdout.trim(), "");
});

// iptables-nft turns `-i` into nft expressions of its own, and `-m conntrack`, `-m connmark` and
// `-m comment` into nft_compat calls; each rule of mangle PREROUTING is walked by every packet of
// every interface, and stops at its first failing test.
test(
  "iptables: each rule in PREROUTING starts with a test, the layouts before are removed by the next apply, classification still works",
  { skip },
  (t) => {
    const node = createNode(t);
    prepareForeignMark(node);
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    const listing = (): string => node.exec(["iptables", "-t", "mangle", "-S"]).stdout;
    const mask = /--comment "symroute restore (0x[0-9a-f]+) #/.exec(listing())?.[1];
    assert.ok(mask !== undefined, listing());

    // The first expression of each of symroute's rules in PREROUTING is a test (`-i` natively, or
    // the connmark match), so the comment match and the counter after it cost only the packets
    // that pass it; the layout before started with the comment (an unconditional jump). ext0, guarded
    // and with pools, has one `-i` test for both.
    const firstExpressions = (): string[] => {
      const debug = node.exec([
        "nft",
        "--debug=netlink",
        "list",
        "chain",
        "ip",
        "mangle",
        "PREROUTING",
      ]).stdout;
      return `\n${debug}`
        .split(/\nip mangle PREROUTING [0-9 ]+\n/)
        .slice(1)
        .map((rule) => /\[ ([a-z]+ [a-z]+ [a-z]+)/.exec(rule)?.[1] ?? rule);
    };
    assert.deepEqual(firstExpressions().sort(), ["match name connmark", "meta load iifname"]);

    // The layouts before, as an older symroute left them: one unconditional jump each from
    // PREROUTING and OUTPUT, the new connections' dispatch chain, and the replies' jump without the
    // direction test.
    const legacy = knownJumps(4);
    const legacyKey = (label: string): string =>
      legacy.find((r) => r.key.startsWith(`${label} #`))?.key ?? "";
    const replies = keyOf(
      "symroute replies " + mask,
      "PREROUTING",
      `-m connmark ! --mark 0x0/${mask} -j SYMROUTE-PRE`,
    );
    const classifyKey = keyOf("ext0 classify", "SYMROUTE-NEW", "-i ext0 -g SYMROUTE-CLASSIFY");
    node.exec(
      ["iptables-restore", "--noflush"],
      `*mangle
:SYMROUTE-NEW - [0:0]
-I PREROUTING 1 -m comment --comment "${legacyKey("symroute prerouting")}" -j SYMROUTE-PRE
-I OUTPUT 1 -m comment --comment "${legacyKey("symroute output")}" -j SYMROUTE-OUT
-I PREROUTING 1 -m connmark ! --mark 0x0/${mask} -m comment --comment "${replies}" -j SYMROUTE-PRE
-A SYMROUTE-PRE -m conntrack --ctstate NEW -m comment --comment "classify new connections #4aa22650" -j SYMROUTE-NEW
-A SYMROUTE-NEW -i ext0 -m comment --comment "${classifyKey}" -g SYMROUTE-CLASSIFY
COMMIT
`,
    );
    assert.match(listing(), /-N SYMROUTE-NEW/);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 2, "the rules of the layouts before are drift");
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
    const after = listing();
    assert.doesNotMatch(after, /SYMROUTE-NEW|symroute prerouting|symroute output|symroute replies/, after);
    assert.equal(after.split("\n").filter((l) => l.startsWith("-A PREROUTING")).length, 2, after);
    assert.deepEqual(firstExpressions().sort(), ["match name connmark", "meta load iifname"]);

    // Classification and the other component's bit, as before.
    sendFlow(node, 4000);
    assert.notEqual(ctMarkOf(node, 4000).mark & Number(mask), 0, "the flow to blue is classified");
    assert.equal(ctMarkOf(node, 4000).mark & FOREIGN_BIT, FOREIGN_BIT);
    assert.equal(node.symroute(["delete", "-c", CONFIG]).code, 0);
    assert.doesNotMatch(listing(), /SYMROUTE-/);
  },
);

test(
  "iptables: a pool interface without a guard classifies its new connections from PREROUTING",
  { skip },
  (t) => {
    const node = createNode(t);
    prepareForeignMark(node);
    // rp_filter already off where symroute would lower it: nothing lowered, so no guard on ext0.
    node.exec([
      "sysctl",
      "-qw",
      "net.ipv4.conf.all.rp_filter=0",
      "net.ipv4.conf.default.rp_filter=0",
      "net.ipv4.conf.ext0.rp_filter=0",
    ]);
    const report = JSON.parse(node.symroute(["plan", "-c", CONFIG, "-o", "json"]).stdout) as {
      guards: { iif: string; family: number }[];
      networks: { name: string; mark?: number }[];
    };
    assert.deepEqual(
      report.guards.filter((g) => g.family === 4),
      [],
      "no IPv4 guard",
    );
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    const prerouting = node.exec(["iptables", "-t", "mangle", "-S", "PREROUTING"]).stdout;
    assert.match(
      prerouting,
      /-A PREROUTING -i ext0 -m conntrack --ctstate NEW .*-j SYMROUTE-CLASSIFY/,
      prerouting,
    );
    assert.doesNotMatch(prerouting, /SYMROUTE-G-/, prerouting);
    const blue = report.networks.find((n) => n.name === "blue")?.mark as number;
    sendFlow(node, 4000);
    assert.equal(ctMarkOf(node, 4000).mark, FOREIGN_BIT | blue);
    assert.equal(node.symroute(["delete", "-c", CONFIG]).code, 0);
  },
);
