// The lab's pure parts, without root: the config it hands symroute validates, the matrix says
// which cells must fail per case, the kube-proxy stand-ins and the probe's arguments are well formed.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfigOrThrow } from "../../src/config/index.ts";
import { matrixOf, spoofCell } from "../../src/lab/matrix.ts";
import { topologyPicture } from "../../src/lab/picture.ts";
import { formatListen, parseListen } from "../../src/lab/probe.ts";
import {
  familiesOf,
  hostsOf,
  KUBE_PROXY_VARIANTS,
  LAB_CASES,
  nodesOf,
  parseLabCase,
  poolOf,
} from "../../src/lab/spec.ts";
import type { LabSpec } from "../../src/lab/spec.ts";
import { ingressCountersText, parseCounterPackets, spoofProbesOf } from "../../src/lab/spoof.ts";
import { labConfigText } from "../../src/lab/symroute.ts";
import { kubeProxyRules } from "../../src/lab/topology.ts";

const ALL_SPECS: LabSpec[] = LAB_CASES.flatMap((c) =>
  KUBE_PROXY_VARIANTS.flatMap((kubeProxy) =>
    (["nftables", "iptables"] as const).flatMap((firewall) =>
      [true, false].flatMap((dualStack) =>
        ([1, 2] as const).map((nodes) => ({ case: c, kubeProxy, firewall, dualStack, nodes })),
      ),
    ),
  ),
);

describe("lab config", () => {
  it("is a valid symroute configuration for every spec", () => {
    for (const spec of ALL_SPECS) {
      const config = loadConfigOrThrow(labConfigText(spec), "lab.yaml");
      const network = config.networks[0];
      assert.ok(network !== undefined);
      assert.equal(config.firewall, spec.firewall);
      assert.equal(network.addresses.length, spec.dualStack ? 2 : 1);
      assert.equal(network.interface, poolOf(spec.case, familiesOf(spec)[0]!).interface);
    }
  });

  it("matches the contract for case 3 (IPv4)", () => {
    const text = labConfigText({ case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: false });
    assert.match(text, /podCIDRs: \[10\.112\.0\.0\/12\]/);
    assert.match(text, /addresses: \[1\.2\.3\.0\/24\]/);
    assert.match(text, /interface: ext0/);
    assert.match(text, /gateway: 1\.2\.3\.1\n/);
  });

  it("gives a dual-stack pool both gateways", () => {
    const text = labConfigText({ case: 4, kubeProxy: "nftables", firewall: "iptables", dualStack: true });
    assert.match(text, /gateway: \[1\.2\.3\.1, 2001:db8:4::1\]/);
  });
});

describe("lab matrix", () => {
  it("expects external cells to fail before symroute exactly in cases 2-4", () => {
    for (const spec of ALL_SPECS) {
      const cells = matrixOf(spec);
      const failing = cells.filter((c) => !c.expectedBefore);
      if (spec.case === 1) assert.equal(failing.length, 0);
      else {
        assert.ok(failing.length > 0);
        // The external cells, and in cases 3, 4 the IPv6 spoof cells: IPv6 has no rp_filter.
        assert.ok(
          failing.every(
            (c) =>
              (c.kind === "external" && c.name.includes("→ LB") && !c.name.includes("node →")) ||
              (c.kind === "spoof" && c.family === 6 && !c.name.includes("into node eth0")),
          ),
        );
        assert.ok(failing.some((c) => c.kind === "external"));
      }
      assert.ok(cells.every((c) => c.expectedAfter));
    }
  });

  it("has the regression cells: node to LB, node's own traffic, management address, spoofing", () => {
    const names = matrixOf({ case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: false }).map(
      (c) => c.name,
    );
    for (const part of ["node → LB", "node's own traffic", "management address", "spoofed"]) {
      assert.ok(
        names.some((n) => n.includes(part)),
        `a cell for ${part}`,
      );
    }
  });

  it("has pod-to-LB cells in case 4 only", () => {
    for (const spec of ALL_SPECS) {
      const podCells = matrixOf(spec).filter((c) => c.name.includes("pod → LB"));
      assert.equal(podCells.length > 0, spec.case === 4);
    }
  });

  it("covers both families in dual-stack, and TCP and UDP for external clients", () => {
    const cells = matrixOf({ case: 3, kubeProxy: "nftables", firewall: "iptables", dualStack: true });
    assert.deepEqual([...new Set(cells.map((c) => c.family))], [4, 6]);
    assert.ok(cells.some((c) => c.name.includes("/udp")));
  });
});

describe("lab kube-proxy stand-ins", () => {
  it("DNAT the LB address to the pod and to the node in iptables and nftables modes", () => {
    const ipt = kubeProxyRules({ case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: true });
    assert.deepEqual(
      ipt.map((r) => r.tool),
      ["iptables-restore", "ip6tables-restore"],
    );
    assert.match(
      ipt[0]!.text,
      /-d 1\.2\.3\.4\/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10\.112\.0\.5:8080/,
    );
    assert.match(ipt[1]!.text, /--to-destination \[2001:db8:1::10\]:8081/);
    const nft = kubeProxyRules({ case: 3, kubeProxy: "nftables", firewall: "nftables", dualStack: false });
    assert.equal(nft.length, 1);
    assert.match(nft[0]!.text, /table ip kube-proxy/);
    assert.match(nft[0]!.text, /ip daddr 1\.2\.3\.4 udp dport 8081 dnat to 192\.168\.1\.10:8081/);
  });

  it("has no DNAT in the IPVS-like variant (the LB address is local)", () => {
    assert.deepEqual(
      kubeProxyRules({ case: 4, kubeProxy: "ipvs-like", firewall: "nftables", dualStack: true }),
      [],
    );
  });
});

describe("lab with two nodes", () => {
  const spec: LabSpec = { case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: true, nodes: 2 };

  it("adds the second node and its pod, and symroute runs on both nodes", () => {
    assert.deepEqual(hostsOf(spec), ["client", "router", "node", "pod", "podc", "node2", "pod2"]);
    assert.deepEqual(nodesOf(spec), ["node", "node2"]);
    assert.deepEqual(nodesOf({ ...spec, nodes: undefined }), ["node"]);
  });

  it("has cells for the pod on the other node, failing before symroute in cases 2-4", () => {
    const remote = matrixOf(spec).filter((c) => c.name.includes("pod on the other node"));
    assert.equal(remote.length, 4);
    assert.ok(remote.every((c) => !c.expectedBefore && c.expectedAfter));
    assert.equal(matrixOf({ ...spec, nodes: 1 }).filter((c) => c.name.includes("other node")).length, 0);
  });

  it("masquerades the cross-node backend with kube-proxy's own mark bit", () => {
    const [v4, v6] = kubeProxyRules(spec);
    assert.match(v4!.text, /--dport 8082 -j KUBE-MARK-MASQ/);
    assert.match(v4!.text, /-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000/);
    assert.match(v4!.text, /--dport 8082 -j DNAT --to-destination 10\.112\.2\.5:8080/);
    assert.match(v6!.text, /--to-destination \[2001:db8:112:2::5\]:8080/);
    const [nft] = kubeProxyRules({ ...spec, kubeProxy: "nftables", dualStack: false });
    assert.match(nft!.text, /meta mark set meta mark or 0x4000 dnat to 10\.112\.2\.5:8080/);
    assert.match(nft!.text, /meta mark and 0x4000 == 0x4000 masquerade/);
  });
});

describe("lab probe arguments and options", () => {
  it("round-trip listen specs, IPv6 addresses included", () => {
    for (const spec of [
      { proto: "tcp", port: 8080 },
      { proto: "udp", port: 8081, address: "1.2.3.4" },
      { proto: "udp", port: 8081, address: "2001:db8:4::4" },
    ] as const) {
      assert.deepEqual(parseListen(formatListen(spec)), spec);
    }
    assert.throws(() => parseListen("sctp:1"), /--listen must be/);
  });

  it("parses --case", () => {
    assert.equal(parseLabCase("4"), 4);
    assert.throws(() => parseLabCase("5"), /--case must be 1, 2, 3 or 4/);
  });

  it("draws each case's topology with its LB address", () => {
    for (const c of LAB_CASES) {
      const picture = topologyPicture({
        case: c,
        kubeProxy: "iptables",
        firewall: "nftables",
        dualStack: true,
      });
      const lb = poolOf(
        c,
        familiesOf({ case: c, kubeProxy: "iptables", firewall: "nftables", dualStack: true })[0]!,
      );
      assert.ok(picture.includes(lb.lbAddress));
    }
  });
});

describe("lab spoof probes", () => {
  const external: LabSpec = { case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: true };

  it("send into eth0 (IPv4) everywhere and into the pool's interface (both families, pod and management) in cases 2-4", () => {
    assert.deepEqual(
      spoofProbesOf(external).map((p) => p.name),
      ["eth0-v4-management", "ext0-v4-pod", "ext0-v4-management", "ext0-v6-pod", "ext0-v6-management"],
    );
    assert.deepEqual(
      spoofProbesOf({ ...external, case: 2 }).map((p) => [p.name, p.sender]),
      [
        ["eth0-v4-management", "router"],
        ["eth1-v4-pod", "lan"],
        ["eth1-v4-management", "lan"],
        ["eth1-v6-pod", "lan"],
        ["eth1-v6-management", "lan"],
      ],
    );
  });

  it("count each probe's packet on the node's ingress, in a table of the lab's own", () => {
    const text = ingressCountersText(external);
    assert.match(text, /^table netdev srlab-ingress \{/);
    assert.match(text, /type filter hook ingress device "ext0" priority -600;/);
    assert.match(
      text,
      /ip6 saddr 2001:db8:112::78 ip6 daddr 2001:db8:112::5 udp dport 8080 counter name "ext0-v6-pod"/,
    );
    assert.match(
      text,
      /ip saddr 10\.112\.0\.77 ip daddr 192\.168\.1\.10 udp dport 8081 counter name "eth0-v4-management"/,
    );
  });

  it("read a counter's packets, and refuse a missing one", () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        { counter: { family: "netdev", name: "ext0-v4-pod", table: "srlab-ingress", packets: 3, bytes: 90 } },
      ],
    });
    assert.equal(parseCounterPackets(json, "ext0-v4-pod"), 3);
    assert.throws(() => parseCounterPackets(json, "ext0-v6-pod"), /no counter ext0-v6-pod/);
  });

  it("expect IPv4 spoofs dropped before and after, and say that IPv6 ones were delivered before", () => {
    const cells = spoofProbesOf(external).map(spoofCell);
    for (const c of cells) {
      assert.equal(c.kind, "spoof");
      assert.equal(c.expectedAfter, true);
      assert.equal(c.expectedBefore, c.family === 4, c.name);
    }
  });
});
