// The contract's failure cases, run like kernel-contract.ts against the fake and the real kernel:
// what each tool refuses, at which line, and that a refused nft or iptables-restore transaction
// changes nothing; and the kernel's answers the fake has to give as well (a route through a link
// that is down, IPv6's default metric, what `ip rule del` takes).

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Family } from "../../src/model/address.ts";
import { NFT_PRE_PRIORITY, ipsetsOf, type FirewallSpec } from "../../src/model/firewall.ts";
import type { FirewallBackend } from "../../src/model/state.ts";
import { BatchError, type BatchTool, type Kernel } from "../../src/engine/ports.ts";
import { SYSCTLS_TO_READ } from "../../src/plan/sysctls.ts";
import {
  renderIpsetFill,
  renderIpsetRemove,
  renderIptables,
  renderNft,
} from "../../src/render/firewall-scripts.ts";
import { SPEC } from "./kernel-contract.ts";

/** A table of symroute's shape around `body` (the lines of one chain), each line numbered as nft counts. */
const inTable = (...body: string[]): string =>
  [
    "table inet symroute {",
    "  chain pre {",
    // As symroute renders `pre`: nft refuses a base chain's priority changed in place.
    `    type filter hook prerouting priority ${NFT_PRE_PRIORITY}; policy accept;`,
    ...body,
    "  }",
    "}",
    "",
  ].join("\n");

/**
 * nft scripts and the line nft refuses each at (undefined: nft takes it). The real-kernel run holds
 * the fake's verdict on each against `nft -c -f -`.
 */
export const NFT_CASES: readonly {
  readonly name: string;
  readonly script: string;
  readonly refusedAt?: number;
}[] = [
  {
    name: "symroute's own script",
    script: renderNft({
      ...SPEC,
      guards: [
        { family: 4, iif: "ext0", mode: "strict", exempt: ["1.2.3.0/24"], reason: "r" },
        { family: 6, iif: "ext0", mode: "strict", exempt: ["2001:db8::/64"], reason: "r" },
      ],
    }),
  },
  { name: "the script that removes symroute's tables", script: renderNft(undefined) },
  {
    name: "a jump to a chain declared further down",
    script: [
      "table inet symroute {",
      "  chain a {",
      "    jump b",
      "  }",
      "  chain b {",
      "    return",
      "  }",
      "}",
      "",
    ].join("\n"),
  },
  {
    name: "a rule that starts with a word nft does not know",
    script: inTable('    bogus keyword here comment "x #1"'),
    refusedAt: 4,
  },
  {
    name: "a jump to a chain the table does not have",
    script: inTable('    ct direction reply jump nowhere comment "x #1"'),
    refusedAt: 4,
  },
  {
    name: "a verdict map jumping to a missing chain",
    script: inTable('    iifname vmap { "ext0" : jump nowhere } comment "x #1"'),
    refusedAt: 4,
  },
  { name: "an unterminated string", script: inTable('    meta mark set 0x1 comment "x #1'), refusedAt: 4 },
  {
    name: "a set not closed on its line",
    script: inTable('    ip daddr { 1.2.3.0/24 return comment "x #1"'),
    refusedAt: 4,
  },
  {
    name: "a prefix longer than its address",
    script: inTable('    ip daddr 1.2.3.0/33 return comment "x #1"'),
    refusedAt: 4,
  },
  {
    name: "a chain hook nft does not know",
    script: inTable().replace("hook prerouting", "hook nohook"),
    refusedAt: 3,
  },
  {
    name: "a priority that is neither a number nor a name",
    script: inTable().replace(`priority ${NFT_PRE_PRIORITY}`, "priority bogus"),
    refusedAt: 3,
  },
  {
    name: "an ingress chain without its device",
    script: [
      "table netdev symroute {",
      "  chain guard_ext0 {",
      "    type filter hook ingress priority -500; policy accept;",
      '    vlan id != 0 return comment "x #1"',
      "  }",
      "}",
      "",
    ].join("\n"),
    refusedAt: 3,
  },
  { name: "an unknown table family", script: "table inet6 symroute {}\n", refusedAt: 1 },
  { name: "a closing brace too many", script: "table inet symroute {\n}\n}\n", refusedAt: 3 },
  {
    name: "the end of the script inside a table",
    script: "table inet symroute {\n  chain pre {\n  }\n",
    refusedAt: 4,
  },
  { name: "the delete of a table that is not there", script: "delete table inet nosuch\n", refusedAt: 1 },
  // The agent's partial transactions (render/nft-incremental.ts): commands on the tables' chains.
  {
    name: "a partial transaction: chains added, one flushed and filled again",
    script: [
      inTable('    jump a comment "x #0"').replace(
        /\}\n$/,
        '  chain a {\n    return comment "x #1"\n  }\n}\n',
      ),
      "add chain inet symroute b",
      'add rule inet symroute b return comment "x #2"',
      "flush chain inet symroute a",
      'add rule inet symroute a jump b comment "x #3"',
      `add chain inet symroute out { type route hook output priority ${NFT_PRE_PRIORITY}; policy accept; }`,
      "",
    ].join("\n"),
  },
  {
    name: "a partial transaction flushing a chain that is not there",
    script: `${inTable()}flush chain inet symroute nosuch\n`,
    refusedAt: 6,
  },
  {
    name: "a partial transaction deleting a chain still jumped to",
    script: `${inTable('    jump a comment "x #0"').replace(/\}\n$/, '  chain a {\n    return comment "x #1"\n  }\n}\n')}flush chain inet symroute a\ndelete chain inet symroute a\n`,
    refusedAt: 11,
  },
];

/** The iptables-restore payloads of one family, each refused at a line. */
function refusedIptables(family: Family): { name: string; payload: string; refusedAt: number }[] {
  const good = renderIptables({ ...SPEC, backend: "iptables" }, family, new Set());
  const lines = good.split("\n"); // the last is empty: the payload ends with a newline
  const commit = lines.indexOf("COMMIT");
  const before = (extra: string): string =>
    [...lines.slice(0, commit), extra, ...lines.slice(commit)].join("\n");
  return [
    {
      name: "a rule in a chain that does not exist",
      payload: before("-A SYMROUTE-NOPE -j RETURN"),
      refusedAt: commit + 1,
    },
    {
      name: "a match iptables does not have",
      payload: before("-A SYMROUTE-PRE -m bogus -j RETURN"),
      refusedAt: commit + 1,
    },
    // Without its table the first line is refused; without COMMIT, the end (the line after the last).
    { name: "no table line", payload: lines.slice(1).join("\n"), refusedAt: 1 },
    {
      name: "no COMMIT",
      payload: lines.filter((l) => l !== "COMMIT").join("\n"),
      refusedAt: lines.length - 1,
    },
  ];
}

function assertRefused(error: unknown, tool: BatchTool, line: number): true {
  assert.ok(error instanceof BatchError, String(error));
  assert.equal(error.tool, tool);
  assert.equal(error.failedLine, line, error.details.join("\n"));
  assert.ok(
    error.details.some((d) => d.startsWith(`failing line ${line}:`)),
    error.details.join("\n"),
  );
  return true;
}

export function kernelFailureContract(name: string, makeKernel: () => Promise<Kernel>): void {
  const firewallOf = async (k: Kernel, backend: FirewallBackend): Promise<string[]> =>
    [...((await k.readFirewall([backend]))[0]?.ruleKeys ?? [])].sort();

  test(`${name}: a refused nft transaction changes nothing and names the line nft names`, async () => {
    const kernel = await makeKernel();
    await kernel.runNft(renderNft(SPEC));
    const before = await firewallOf(kernel, "nftables");
    assert.ok(before.length > 0);
    for (const c of NFT_CASES) {
      if (c.refusedAt === undefined) continue;
      await assert.rejects(
        kernel.runNft(c.script),
        (e) => assertRefused(e, "nft", c.refusedAt as number),
        c.name,
      );
      assert.deepEqual(await firewallOf(kernel, "nftables"), before, c.name);
    }
    // Symroute's own replacement, with one bad rule: the table it would replace stays whole.
    const script = renderNft({ ...SPEC, mask: 0xf00 });
    const lines = script.split("\n");
    const at = lines.findIndex((l) => l.includes("jump restore"));
    lines[at] = (lines[at] as string).replace("jump restore", "jump nowhere");
    await assert.rejects(kernel.runNft(lines.join("\n")), (e) => assertRefused(e, "nft", at + 1));
    assert.deepEqual(await firewallOf(kernel, "nftables"), before);
  });

  test(`${name}: nft takes symroute's scripts and jumps to chains declared further down`, async () => {
    const kernel = await makeKernel();
    for (const c of NFT_CASES) if (c.refusedAt === undefined) await kernel.runNft(c.script);
  });

  for (const family of [4, 6] as const) {
    test(`${name}: a refused ${family === 4 ? "iptables" : "ip6tables"}-restore changes nothing and names the line`, async () => {
      const kernel = await makeKernel();
      const spec: FirewallSpec = { ...SPEC, backend: "iptables" };
      // The rules refer to the spec's ipsets, which exist first.
      await kernel.runIpsetRestore(renderIpsetFill(spec) ?? "");
      await kernel.runIptablesRestore(family, renderIptables(spec, family, new Set()));
      const before = await firewallOf(kernel, "iptables");
      assert.ok(before.some((k) => k.startsWith(`${family}:`)));
      const tool = family === 4 ? "iptables-restore" : "ip6tables-restore";
      for (const c of refusedIptables(family)) {
        await assert.rejects(
          kernel.runIptablesRestore(family, c.payload),
          (e) => assertRefused(e, tool, c.refusedAt),
          c.name,
        );
        assert.deepEqual(await firewallOf(kernel, "iptables"), before, c.name);
      }
      // Clean up: the real kernel keeps iptables chains between the tests of one namespace.
      const present = new Set(before.filter((k) => k.startsWith(`${family}:`)).map((k) => k.slice(2)));
      await kernel.runIptablesRestore(family, renderIptables(undefined, family, present));
      const sets = ipsetsOf(spec).map((x) => x.name);
      await kernel.runIpsetRestore(renderIpsetRemove(undefined, sets) ?? "");
    });
  }

  test(`${name}: a route through a link that is down is refused`, async () => {
    const kernel = await makeKernel();
    await kernel.runIpBatch(4, ["link set ext0 down"]);
    try {
      for (const line of [
        "route add 5.6.7.0/24 dev ext0 table 20001 proto 201",
        "route add 5.6.8.0/24 via 1.2.3.1 dev ext0 onlink table 20001 proto 201",
      ]) {
        await assert.rejects(kernel.runIpBatch(4, [line]), (e) => assertRefused(e, "ip", 1), line);
      }
      await assert.rejects(
        kernel.runIpBatch(6, ["route add 2001:db8:7::/64 dev ext0 table 20000 proto 201 metric 1024"]),
        (e) => assertRefused(e, "ip", 1),
      );
    } finally {
      await kernel.runIpBatch(4, ["link set ext0 up"]);
    }
    const node = await kernel.readNode({ ...SYSCTLS_TO_READ, firewalls: [] });
    assert.ok(!node.routes.some((r) => r.table === 20001 || r.table === 20000));
  });

  test(`${name}: an IPv6 route without a metric reads back with metric 1024, and goes without one`, async () => {
    const kernel = await makeKernel();
    await kernel.runIpBatch(6, [
      "route add 2001:db8:7::/64 dev ext0 table 20000 proto 201",
      "route add 2001:db8:8::/64 dev ext0 table 20000 proto 201 metric 0",
    ]);
    const read = async () =>
      (await kernel.readNode({ ...SYSCTLS_TO_READ, firewalls: [], families: [6] })).routes.filter(
        (r) => r.table === 20000,
      );
    assert.deepEqual((await read()).map((r) => [r.dst, r.metric]).sort(), [
      ["2001:db8:7::/64", 1024],
      ["2001:db8:8::/64", 1024],
    ]);
    // An IPv4 route without a metric has none (0).
    await kernel.runIpBatch(4, ["route add 5.6.7.0/24 dev ext0 table 20001 proto 201"]);
    const v4 = (await kernel.readNode({ ...SYSCTLS_TO_READ, firewalls: [], families: [4] })).routes;
    assert.equal(v4.find((r) => r.dst === "5.6.7.0/24")?.metric ?? 0, 0);
    // A delete that names no metric takes the route whatever its metric.
    await kernel.runIpBatch(6, [
      "route del 2001:db8:7::/64 table 20000",
      "route del 2001:db8:8::/64 table 20000",
    ]);
    assert.deepEqual(await read(), []);
  });

  test(`${name}: ip rule del takes the first rule with every attribute its line gives`, async () => {
    const kernel = await makeKernel();
    await kernel.runIpBatch(4, [
      "rule add priority 1001 fwmark 0x1/0xff lookup 20000 proto 201",
      "rule add priority 1001 from 1.2.3.0/24 lookup 20001 proto 201",
      "rule add priority 1002 fwmark 0x2/0xff lookup 20002 proto 201",
    ]);
    const rules = async (): Promise<string[]> =>
      (await kernel.readNode({ ...SYSCTLS_TO_READ, firewalls: [], families: [4] })).rules
        .filter((r) => r.priority === 1001 || r.priority === 1002)
        .map((r) => `${r.priority} ${r.from ?? r.fwmark} ${r.table}`);
    // A priority alone takes the first rule of that priority.
    await kernel.runIpBatch(4, ["rule del priority 1001"]);
    assert.deepEqual(await rules(), ["1001 1.2.3.0/24 20001", "1002 2 20002"]);
    // No priority: the rule with that mark and table, wherever it is.
    await kernel.runIpBatch(4, ["rule del fwmark 0x2/0xff lookup 20002"]);
    assert.deepEqual(await rules(), ["1001 1.2.3.0/24 20001"]);
    // An attribute given that the rule does not have: no such rule.
    for (const line of [
      "rule del priority 1001 lookup 20005",
      "rule del priority 1001 from 1.2.3.0/24 lookup 20001 proto 202",
      "rule del priority 1001 fwmark 0x1/0xff",
    ]) {
      await assert.rejects(kernel.runIpBatch(4, [line]), (e) => assertRefused(e, "ip", 1), line);
    }
    assert.deepEqual(await rules(), ["1001 1.2.3.0/24 20001"]);
    // The table left out: still that rule.
    await kernel.runIpBatch(4, ["rule del priority 1001 from 1.2.3.0/24 proto 201"]);
    assert.deepEqual(await rules(), []);
  });
}
