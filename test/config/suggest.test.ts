// The "did you mean" of an unknown key: a typo, a case or separator slip, never a far guess.

import { test } from "node:test";
import assert from "node:assert/strict";
import { closestKey } from "../../src/config/suggest.ts";
import { parseConfigText } from "../../src/config/index.ts";

const TOP = [
  "podCIDRs",
  "networks",
  "firewall",
  "kubeProxyMode",
  "rulePriorities",
  "tables",
  "marks",
  "routeProtocol",
  "stateDir",
];
const NETWORK = ["name", "addresses", "interface", "gateway", "vlan", "table", "method"];

test("typos, transpositions, case and separators find the key; far or ambiguous ones find none", () => {
  const cases: [string, readonly string[], string | undefined][] = [
    ["gatway", NETWORK, "gateway"],
    ["gateways", NETWORK, "gateway"],
    ["adresses", NETWORK, "addresses"],
    ["address", NETWORK, "addresses"],
    ["netwroks", TOP, "networks"],
    ["network", TOP, "networks"],
    ["podCidrs", TOP, "podCIDRs"],
    ["pod_cidrs", TOP, "podCIDRs"],
    ["state-dir", TOP, "stateDir"],
    ["kube_proxy_mode", TOP, "kubeProxyMode"],
    ["tabel", NETWORK, "table"],
    ["iface", NETWORK, undefined],
    ["gw", NETWORK, undefined],
    ["colour", NETWORK, undefined],
    ["bits", ["mask", "avoid"], undefined],
    ["x".repeat(1000), NETWORK, undefined],
  ];
  for (const [key, allowed, expected] of cases) assert.equal(closestKey(key, allowed), expected, key);
});

test("the loader's message ends with the suggestion, after the allowed keys", () => {
  const result = parseConfigText(
    "networks:\n  - name: a\n    adresses: [1.2.3.0/24]\n    interface: ext0\nstate_dir: /tmp/x\n",
  );
  assert.equal(result.ok, false);
  const messages = result.ok ? [] : result.issues.map((i) => i.message);
  assert.ok(
    messages.includes(
      'unknown key "adresses"; allowed: name, addresses, interface, gateway, vlan, table, method; did you mean "addresses"?',
    ),
    JSON.stringify(messages),
  );
  assert.ok(
    messages.some(
      (m) => m.startsWith('unknown key "state_dir"; allowed: ') && m.endsWith('; did you mean "stateDir"?'),
    ),
  );
});
