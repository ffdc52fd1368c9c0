// An interface the configuration names that the node lacks: each problem names the field as the
// configuration's own checks do (its path, then the network), and the hint says what to do.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isSymrouteError } from "../../src/model/errors.ts";
import { computeDesired } from "../../src/plan/desired.ts";
import { articleNode } from "../support/fake-kernel.ts";
import { configFrom } from "../support/config.ts";

test("a missing interface or VLAN parent names networks[i].field and the network", () => {
  const config = configFrom(`
networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: lab, addresses: [5.6.7.0/24], interface: ext9 }
  - { name: vlan, addresses: [9.9.9.0/24], interface: eth7.100, vlan: { parent: eth7, id: 100 } }
`);
  assert.throws(
    () =>
      computeDesired({
        config,
        node: articleNode(),
        saved: undefined,
        firewall: "nftables",
        kubeProxyMode: "iptables",
      }),
    (error: unknown) => {
      assert.ok(isSymrouteError(error));
      assert.equal(error.kind, "dependency");
      assert.equal(error.message, "2 problem(s) with interfaces on this node");
      assert.deepEqual(error.details, [
        'networks[1].interface (network "lab"): interface "ext9" does not exist on this node',
        'networks[2].vlan.parent (network "vlan"): interface "eth7" does not exist on this node',
      ]);
      assert.match(error.hint ?? "", /correct interface: in the configuration/);
      assert.match(error.hint ?? "", /symroute doctor/);
      return true;
    },
  );
});
