// Where plan's kube-proxy mode comes from: the config, kube-proxy's traces on the node, or an
// assumption when `auto` finds none (which plan's first line and `-o json` then say).

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/index.ts";
import { resolveKubeProxyMode } from "../../src/plan/desired.ts";
import type { KubeProxyHints } from "../../src/model/state.ts";
import { articleNode } from "../support/fake-kernel.ts";

function configWith(mode: string) {
  const parsed = parseConfigText(
    `kubeProxyMode: ${mode}\nnetworks:\n  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }\n`,
  );
  assert.ok(parsed.ok);
  return parsed.config;
}

const nodeWith = (hints: KubeProxyHints | undefined) => ({ ...articleNode(), kubeProxy: hints });
const NONE: KubeProxyHints = { iptablesChains: false, nftablesTable: false, ipvsLink: false };

test("a mode written in the config is the config's, traces or not", () => {
  for (const hints of [undefined, NONE, { ...NONE, ipvsLink: true }]) {
    assert.equal(resolveKubeProxyMode(configWith("nftables"), nodeWith(hints)).source, "config");
    assert.equal(resolveKubeProxyMode(configWith("nftables"), nodeWith(hints)).mode, "nftables");
  }
});

test("auto with one of kube-proxy's traces is detected", () => {
  const cases: [Partial<KubeProxyHints>, string][] = [
    [{ ipvsLink: true }, "ipvs"],
    [{ nftablesTable: true }, "nftables"],
    [{ iptablesChains: true }, "iptables"],
  ];
  for (const [trace, mode] of cases) {
    const node = nodeWith({ ...NONE, ...trace });
    assert.equal(resolveKubeProxyMode(configWith("auto"), node).source, "detected", mode);
    assert.equal(resolveKubeProxyMode(configWith("auto"), node).mode, mode);
  }
});

test("auto with no trace (or none read) is an assumption of iptables", () => {
  for (const hints of [undefined, NONE]) {
    assert.equal(resolveKubeProxyMode(configWith("auto"), nodeWith(hints)).source, "assumed");
    assert.equal(resolveKubeProxyMode(configWith("auto"), nodeWith(hints)).mode, "iptables");
  }
});
