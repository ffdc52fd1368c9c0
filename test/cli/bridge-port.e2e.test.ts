// A network whose interface is a bridge's port (ext0 enslaved to br0). The kernel hands every
// packet arriving on a port to the bridge: rp_filter, routing and ARP see br0, not ext0 (measured
// with the traffic below; `ip route get ... iif ext0` does not show it: it asks as if ext0 itself
// received the packet). plan and doctor used to say nothing (doctor: "Healthy"), and apply raised br0's
// rp_filter to keep its anti-spoofing, so the pool's requests were dropped. Now plan warns and
// doctor fails naming `interface: br0`; the traffic agrees, and with br0 the client is answered.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { DoctorReport } from "../../src/verify/doctor.ts";
import {
  configDir,
  createNode,
  e2eUnavailable,
  must,
  run,
  type Netns,
  startHttpServer,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-bridge-");
const PORT = 8084;
const CLIENT = "203.0.113.10";
const LB = "1.2.3.4";
const network = (ifname: string): string =>
  writeConfigFile(
    dir,
    `${ifname}.yaml`,
    `networks:\n  - { name: public, addresses: [1.2.3.0/24], interface: ${ifname}, gateway: 1.2.3.1 }\n`,
  );
const ON_PORT = network("ext0");
const ON_BRIDGE = network("br0");

/** ext0 a port of br0; the router (peer) is 1.2.3.1 with the client's address, the LB address on the node's lo. */
function topology(node: Netns): void {
  must(
    ["ip", "-n", node.name, "-batch", "-"],
    "link add br0 type bridge\nlink set ext0 master br0\nlink set br0 up\naddr add 1.2.3.4/32 dev lo\n",
  );
  const mac = (
    JSON.parse(must(["ip", "-n", node.name, "-j", "link", "show", "br0"])) as { address: string }[]
  )[0]?.address;
  assert.ok(mac);
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      "addr add 1.2.3.1/24 dev r-ext0",
      `addr add ${CLIENT}/32 dev r-ext0`,
      `neigh replace ${LB} lladdr ${mac} dev r-ext0 nud permanent`,
      `route replace ${LB}/32 dev r-ext0 src ${CLIENT}`,
      "",
    ].join("\n"),
  );
}

const clientReachesLb = (node: Netns): boolean =>
  run([
    "ip",
    "netns",
    "exec",
    node.peer,
    "curl",
    "-s",
    "--max-time",
    "3",
    "--interface",
    CLIENT,
    `http://${LB}:${PORT}/`,
  ]).stdout === "ok";

test(
  "a pool's interface that is a bridge's port: plan warns, doctor names the bridge, and the traffic agrees",
  { skip },
  async (t) => {
    const node = createNode(t);
    topology(node);
    await startHttpServer(t, node, PORT);

    const planned = node.symroute(["plan", "-c", ON_PORT, "-o", "json"]);
    assert.equal(planned.code, 2, planned.stderr);
    const warning = (
      JSON.parse(planned.stdout) as {
        warningDetails: { kind: string; message: string; networks: string[] }[];
      }
    ).warningDetails.find((w) => w.kind === "interface-is-port");
    assert.ok(warning, planned.stdout);
    assert.deepEqual(warning.networks, ["public"]);
    assert.match(warning.message, /is a port of bridge "br0".*set interface: br0/);

    const applied = node.symroute(["apply", "-c", ON_PORT]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(clientReachesLb(node), false, "requests arriving through the port are dropped");
    const doctor = (config: string): DoctorReport => {
      const r = node.symroute(["doctor", "-c", config, "-o", "json"]);
      assert.ok(r.code === 0 || r.code === 3, `doctor exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as DoctorReport;
    };
    const before = doctor(ON_PORT);
    assert.equal(before.healthy, false, "doctor used to say Healthy");
    const iface = before.findings.find((f) => f.path === "interface");
    assert.ok(iface, JSON.stringify(before.findings, null, 2));
    assert.equal(iface.ok, false);
    assert.match(iface.fix ?? "", /set `interface: br0` for network public/);

    // The fix doctor names.
    const fixed = node.symroute(["apply", "-c", ON_BRIDGE]);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.doesNotMatch(fixed.stdout, /is a port of/);
    assert.equal(clientReachesLb(node), true, "with interface br0 the client is answered");
    assert.equal(doctor(ON_BRIDGE).healthy, true);
  },
);
