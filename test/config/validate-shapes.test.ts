// Shapes of input a faster validator could easily get wrong: fields that are not enumerable, one
// gateway against a list of one, null fields among unknown keys.

import { test } from "node:test";
import assert from "node:assert/strict";
import { validateConfigObject } from "../../src/config/validate.ts";

test("a field that is an own but not enumerable property is still read", () => {
  const net: Record<string, unknown> = { addresses: ["192.0.2.0/24"], interface: "eth0" };
  Object.defineProperty(net, "name", { value: "edge", enumerable: false });
  Object.defineProperty(net, "gateway", { value: "192.0.2.1", enumerable: false });
  const result = validateConfigObject({ networks: [net] });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.config.networks[0]?.name, "edge");
  assert.deepStrictEqual(result.config.networks[0]?.gateways, { 4: "192.0.2.1" });
});

test("one gateway and a list of one give the same gateways object", () => {
  const base = { name: "edge", addresses: ["192.0.2.0/24", "2001:db8::/64"], interface: "eth0" };
  for (const [single, list] of [
    ["192.0.2.1", ["192.0.2.1"]],
    ["2001:db8::1", ["2001:db8::1"]],
  ] as const) {
    const a = validateConfigObject({ networks: [{ ...base, gateway: single }] });
    const b = validateConfigObject({ networks: [{ ...base, gateway: list }] });
    assert.ok(a.ok && b.ok);
    assert.deepStrictEqual(a.config.networks[0]?.gateways, b.config.networks[0]?.gateways);
    assert.deepStrictEqual(Object.keys(a.config.networks[0]?.gateways ?? {}), [
      single.includes(":") ? "6" : "4",
    ]);
  }
});

test("a null field counts as not given, and unknown keys are reported in key order", () => {
  const result = validateConfigObject({
    networks: [{ zeta: 1, name: null, addresses: ["192.0.2.0/24"], interface: "eth0", alpha: 2 }],
  });
  assert.ok(!result.ok);
  assert.deepStrictEqual(
    result.issues.map((i) => i.path),
    [
      ["networks", 0, "zeta"],
      ["networks", 0, "alpha"],
      ["networks", 0, "name"],
    ],
  );
});
