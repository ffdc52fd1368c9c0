// The configuration against the node it runs on: an interface the node lacks is named as the
// configuration's own checks name a field (its path, then the network), with what to do; a gateway
// that is one of the node's own addresses is named in a warning.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isSymrouteError } from "../../src/model/errors.ts";
import { configFrom } from "../support/config.ts";
import { desiredOnArticleNode } from "../support/desired.ts";

test("a missing interface or VLAN parent names networks[i].field and the network", () => {
  const config = configFrom(`
networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: lab, addresses: [5.6.7.0/24], interface: ext9 }
  - { name: vlan, addresses: [9.9.9.0/24], interface: eth7.100, vlan: { parent: eth7, id: 100 } }
`);
  assert.throws(
    () => desiredOnArticleNode(config),
    (error: unknown) => {
      assert.ok(isSymrouteError(error));
      assert.equal(error.kind, "dependency");
      assert.equal(error.message, "2 problems with interfaces on this node");
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

test("a gateway that is the node's own address is named in a warning (the kernel accepts it, replies never leave)", () => {
  const config = configFrom(`
networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 192.168.1.10 }
  - { name: fine, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1 }
`);
  const desired = desiredOnArticleNode(config);
  const warnings = desired.warnings.filter((w) => w.includes("is an address of this node"));
  assert.deepEqual(warnings, [
    'network "public": gateway 192.168.1.10 is an address of this node (on eth0), not a router: replies for its pools would be sent to the node itself and never leave; give the address of the router behind ext0',
  ]);
});

test("a pool on another interface's subnet (the wrong interface:, most often) is named in a warning", () => {
  const desiredFor = (yaml: string) => desiredOnArticleNode(configFrom(yaml));
  const wrong = desiredFor(`
networks:
  - { name: lan, addresses: [192.168.1.200/29], interface: ext0 }
`);
  assert.deepEqual(
    wrong.warnings.filter((w) => w.includes("but its interface is")),
    [
      "network \"lan\": 192.168.1.200/29 is on eth0's 192.168.1.0/24, but its interface is ext0: symroute's routes for it (method route) take these addresses away from that link; if MetalLB announces them there, set interface to it",
    ],
  );
  assert.match(
    wrong.decisions[0]?.reason ?? "",
    /^192\.168\.1\.200\/29 is on no subnet of ext0 and has no gateway/,
  );
  // On its own interface's subnet: nothing to do, nothing to say.
  const right = desiredFor(`
networks:
  - { name: lan, addresses: [192.168.1.200/29], interface: eth0 }
`);
  assert.equal(right.decisions[0]?.method, "none");
  assert.deepEqual(right.warnings, []);
});
