import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parse } from "yaml";
import { mergeClusterNetworks, readConfigFile } from "../../src/agent/desired-config.ts";
import { networksFromCluster, type NetworkVerdict } from "../../src/agent/kubernetes/cluster.ts";
import { poolEntryToPrefixes } from "../../src/agent/kubernetes/pool-addresses.ts";
import type {
  IpAddressPool,
  L2Advertisement,
  NodeInfo,
  SymrouteNetwork,
} from "../../src/agent/kubernetes/resources.ts";
import { matchSelector } from "../../src/agent/kubernetes/selectors.ts";
import { parsePrefix, prefixContainsIp } from "../../src/model/address.ts";

const fixture = (name: string): unknown =>
  parse(readFileSync(new URL(`./fixtures/cluster/${name}`, import.meta.url), "utf8"));

describe("poolEntryToPrefixes", () => {
  it("converts MetalLB ranges to the minimal prefix list", () => {
    assert.deepEqual(poolEntryToPrefixes("1.2.3.100-1.2.3.110"), {
      ok: true,
      prefixes: ["1.2.3.100/30", "1.2.3.104/30", "1.2.3.108/31", "1.2.3.110"],
    });
    assert.deepEqual(poolEntryToPrefixes("192.0.2.0 - 192.0.2.255"), {
      ok: true,
      prefixes: ["192.0.2.0/24"],
    });
    assert.deepEqual(poolEntryToPrefixes("2001:db8::1-2001:db8::2"), {
      ok: true,
      prefixes: ["2001:db8::1", "2001:db8::2"],
    });
    assert.deepEqual(poolEntryToPrefixes("192.0.2.9/24"), { ok: true, prefixes: ["192.0.2.0/24"] });
  });

  it("refuses what is not a pool entry, naming it", () => {
    for (const bad of [
      "192.0.2.5-192.0.2.1",
      "192.0.2.1-2001:db8::1",
      "192.0.2.1",
      "nonsense",
      "0.0.0.0/0",
      "0.0.0.0-255.255.255.255",
    ]) {
      const result = poolEntryToPrefixes(bad);
      assert.equal(result.ok, false, bad);
      if (!result.ok) assert.match(result.problem, new RegExp(bad.replace(/[.*]/g, "\\$&").slice(0, 6)));
    }
  });

  it("a single address range yields one host prefix containing it", () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        const result = poolEntryToPrefixes(`${ip}-${ip}`);
        assert.ok(result.ok);
        if (result.ok) {
          assert.equal(result.prefixes.length, 1);
          const prefix = parsePrefix(result.prefixes[0] ?? "");
          assert.ok(prefix !== undefined && prefix.len === 32);
        }
      }),
    );
    void prefixContainsIp;
  });
});

describe("matchSelector", () => {
  const labels = { zone: "dmz", hw: "gen2" };
  it("implements matchLabels and the four operators; empty and absent match all", () => {
    assert.equal(matchSelector(undefined, labels).matches, true);
    assert.equal(matchSelector({}, labels).matches, true);
    assert.equal(matchSelector({ matchLabels: { zone: "dmz" } }, labels).matches, true);
    assert.equal(matchSelector({ matchLabels: { zone: "inside" } }, labels).matches, false);
    const expr = (operator: string, values?: string[]) =>
      matchSelector({ matchExpressions: [{ key: "hw", operator, ...(values ? { values } : {}) }] }, labels)
        .matches;
    assert.equal(expr("In", ["gen1", "gen2"]), true);
    assert.equal(expr("In", ["gen1"]), false);
    assert.equal(expr("NotIn", ["gen1"]), true);
    assert.equal(expr("NotIn", ["gen2"]), false);
    assert.equal(expr("Exists"), true);
    assert.equal(expr("DoesNotExist"), false);
    const bad = matchSelector({ matchExpressions: [{ key: "hw", operator: "Gt" }] }, labels);
    assert.equal(bad.matches, false);
    assert.match(bad.problem ?? "", /"Gt"/);
  });
});

describe("networksFromCluster", () => {
  const metallb = fixture("pools.yaml") as { pools: IpAddressPool[]; l2Advertisements: L2Advertisement[] };
  const networks = fixture("networks.yaml") as SymrouteNetwork[];
  const nodes = fixture("nodes.yaml") as Record<string, NodeInfo>;
  const expected = JSON.parse(
    readFileSync(new URL("./fixtures/cluster/expected.json", import.meta.url), "utf8"),
  ) as Record<string, NetworkVerdict[]>;

  for (const [nodeName, node] of Object.entries(nodes)) {
    it(`gives node ${nodeName} the expected networks and problems (fixtures/cluster/expected.json)`, () => {
      const verdicts = networksFromCluster({
        networks,
        pools: metallb.pools,
        l2Advertisements: metallb.l2Advertisements,
        node,
      });
      assert.deepEqual(verdicts, expected[nodeName]);
    });
  }

  it("addresses follow the pools: a pool change changes the network", () => {
    const node = nodes["edge-gen1"] as NodeInfo;
    const pools = metallb.pools.map((p) =>
      p.metadata.name === "ext-pool" ? { ...p, spec: { addresses: ["1.2.3.64/26"] } } : p,
    );
    const verdict = networksFromCluster({
      networks,
      pools,
      l2Advertisements: metallb.l2Advertisements,
      node,
    }).find((v) => v.network === "by-name");
    assert.equal(verdict?.state, "selected");
    if (verdict?.state === "selected") assert.deepEqual(verdict.entry.addresses, ["1.2.3.64/26"]);
  });

  it("merges cluster networks with the file; a bad one is refused alone, with the validator's words", () => {
    const file = readConfigFile(
      "podCIDRs: [10.112.0.0/12]\nnetworks:\n  - name: local\n    addresses: [192.0.2.0/28]\n    interface: eth9\n    gateway: [192.0.2.1]\n",
      "agent.yaml",
    );
    assert.ok(file.ok);
    if (!file.ok) return;
    const verdicts: NetworkVerdict[] = [
      {
        network: "good",
        state: "selected",
        entry: { name: "good", addresses: ["198.51.100.0/24"], interface: "eth1", gateway: ["198.51.100.1"] },
      },
      {
        network: "inside-pods",
        state: "selected",
        entry: {
          name: "inside-pods",
          addresses: ["10.112.5.0/24"],
          interface: "eth1",
          gateway: ["10.112.5.1"],
        },
      },
      {
        network: "local",
        state: "selected",
        entry: { name: "local", addresses: ["203.0.113.0/24"], interface: "eth1" },
      },
      { network: "elsewhere", state: "not-selected" },
    ];
    const merged = mergeClusterNetworks(file, verdicts);
    assert.deepEqual(
      merged.config.networks.map((n) => n.name),
      ["local", "good"],
    );
    assert.deepEqual([...merged.refused.keys()].sort(), ["inside-pods", "local"]);
    assert.match(merged.refused.get("inside-pods") ?? "", /SymrouteNetwork\/inside-pods/);
    assert.match(merged.refused.get("local") ?? "", /already has a network named "local"/);
  });
  it("accepts a valid cluster list whole, in order, with the file's networks first", () => {
    const file = readConfigFile(
      "networks:\n  - name: local\n    addresses: [192.0.2.0/28]\n    interface: eth9\n",
      "agent.yaml",
    );
    assert.ok(file.ok);
    if (!file.ok) return;
    const verdicts: NetworkVerdict[] = Array.from({ length: 200 }, (_, i) => ({
      network: `n${i}`,
      state: "selected" as const,
      entry: {
        name: `n${i}`,
        addresses: [`100.64.${i}.0/24`],
        interface: "eth1",
        gateway: [`100.64.${i}.1`],
      },
    }));
    const merged = mergeClusterNetworks(file, [
      ...verdicts,
      {
        network: "local",
        state: "selected",
        entry: { name: "local", addresses: ["203.0.113.0/24"], interface: "eth1" },
      },
    ]);
    assert.deepEqual(
      merged.config.networks.map((n) => n.name),
      ["local", ...verdicts.map((v) => v.network)],
    );
    assert.deepEqual([...merged.refused.keys()], ["local"]);
  });
});
