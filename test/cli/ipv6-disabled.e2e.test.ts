// An IPv6 pool on an interface with IPv6 off (`net.ipv6.conf.ext0.disable_ipv6=1`). The kernel
// refuses an IPv6 route through it ("IPv6 is disabled on nexthop device") and drops every IPv6
// packet arriving there. plan used to list those routes, apply failed on them and rolled back (every
// other change with it), and doctor named `apply` as the fix. Now plan warns and leaves them out,
// apply converges the rest, doctor names the sysctl; the traffic agrees before and after that fix.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DoctorReport } from "../../src/verify/doctor.ts";
import { createNode, e2eUnavailable, type Netns, startHttpServer } from "../support/netns.ts";
import {
  IPV6_CLIENT,
  IPV6_LB,
  clientReachesLb as reachesLb,
  ipv6RouterTopology,
  mustIn,
} from "../support/ipv6-router.ts";
import { startNodeAgent, untilAgent, untilReady } from "../agent/support/agent-process.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-v6off-"));
chmodSync(dir, 0o755);

const PORT = 8083;
const CLIENT = IPV6_CLIENT;
const LB = IPV6_LB;
const URL_BASE = "http://127.0.0.1:9473";
const CONFIG = join(dir, "dual.yaml");
writeFileSync(
  CONFIG,
  `networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`,
);
chmodSync(CONFIG, 0o644);

const topology = (node: Netns): void => ipv6RouterTopology(node, PORT);
const clientReachesLb = (node: Netns): boolean => reachesLb(node, PORT);

const table20000 = (node: Netns): string => mustIn(node, ["ip", "-6", "route", "show", "table", "20000"]);

test(
  "IPv6 off on the pool's interface: plan leaves its IPv6 routes out and says why, apply converges, doctor names the sysctl",
  { skip },
  async (t) => {
    const node = createNode(t, { dualStack: true });
    mustIn(node, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    topology(node);
    await startHttpServer(t, node, PORT);
    mustIn(node, ["sysctl", "-qw", "net.ipv6.conf.ext0.disable_ipv6=1"]);
    // What the kernel does with the routes plan used to list.
    const refused = node.exec([
      "ip",
      "-6",
      "route",
      "add",
      "2001:db8:100::/64",
      "dev",
      "ext0",
      "table",
      "20000",
    ]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /IPv6 is disabled on nexthop device/);

    const planned = node.symroute(["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(planned.code, 2, planned.stderr);
    const plan = JSON.parse(planned.stdout) as {
      changes: { text: string }[];
      warningDetails: { kind: string; message: string; networks: string[] }[];
    };
    assert.deepEqual(
      plan.changes.filter((c) => /ip -6 route/.test(c.text)),
      [],
      "no IPv6 route through ext0 is planned",
    );
    assert.ok(plan.changes.some((c) => /^ip route add default via 1\.2\.3\.1 dev ext0/.test(c.text)));
    const warning = plan.warningDetails.find((w) => w.kind === "ipv6-disabled");
    assert.ok(warning, JSON.stringify(plan.warningDetails));
    assert.deepEqual(warning.networks, ["public"]);
    assert.match(warning.message, /sysctl -w net\.ipv6\.conf\.ext0\.disable_ipv6=0/);

    // apply used to exit 1 here ("IPv6 is disabled on nexthop device", everything rolled back).
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /warning: IPv6 is disabled on interface "ext0"/);
    assert.match(mustIn(node, ["ip", "route", "show", "table", "20000"]), /default via 1\.2\.3\.1 dev ext0/);
    assert.equal(table20000(node), "");
    const again = node.symroute(["plan", "-c", CONFIG]);
    assert.equal(again.code, 0, again.stdout);

    // doctor: the interface, with the sysctl as the fix (not `apply` alone), and the traffic agrees.
    const doctor = (): DoctorReport => {
      const r = node.symroute(["doctor", "-c", CONFIG, "--client", CLIENT, "-o", "json"]);
      assert.ok(r.code === 0 || r.code === 3, `doctor exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as DoctorReport;
    };
    const before = doctor().findings.filter((f) => f.family === 6);
    const iface = before.find((f) => f.path === "interface");
    assert.ok(iface, JSON.stringify(before, null, 2));
    assert.equal(iface.ok, false);
    assert.match(iface.fix ?? "", /^sysctl -w net\.ipv6\.conf\.ext0\.disable_ipv6=0 /);
    assert.ok(
      before.every((f) => f.ok || f === iface),
      `only the interface finding fails: ${JSON.stringify(before, null, 2)}`,
    );
    assert.equal(clientReachesLb(node), false, "IPv6 off on ext0: the request is dropped");

    // The fix doctor names, then apply: the routes come, the client is answered.
    mustIn(node, ["sysctl", "-qw", "net.ipv6.conf.ext0.disable_ipv6=0"]);
    const fixed = node.symroute(["apply", "-c", CONFIG, "-o", "json"]);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.ok(
      !(JSON.parse(fixed.stdout) as { warningDetails: { kind: string }[] }).warningDetails.some(
        (w) => w.kind === "ipv6-disabled",
      ),
    );
    assert.match(table20000(node), /default via 2001:db8:100::1 dev ext0/);
    assert.equal(clientReachesLb(node), true, "with IPv6 on, the reply goes back through ext0");
    assert.ok(!doctor().findings.some((f) => f.path === "interface"));
  },
);

test(
  "the agent with IPv6 off on the pool's interface: ready without the IPv6 routes, adds them when IPv6 is turned on",
  { skip },
  async (t) => {
    const node = createNode(t, { dualStack: true });
    mustIn(node, ["sysctl", "-qw", "net.ipv6.conf.ext0.disable_ipv6=1"]);
    const agent = startNodeAgent(t, node, readFileSync(CONFIG, "utf8"), ["--resync-interval", "0"]);
    // Before, every reconcile failed on the refused route and the agent never became ready.
    await untilReady(agent, node.name, URL_BASE);
    assert.match(mustIn(node, ["ip", "route", "show", "table", "20000"]), /default via 1\.2\.3\.1 dev ext0/);
    assert.equal(table20000(node), "");
    // Only the kernel's events (the link-local address IPv6 brings) can tell it: the resync is off.
    mustIn(node, ["sysctl", "-qw", "net.ipv6.conf.ext0.disable_ipv6=0"]);
    await untilAgent(agent, "the IPv6 routes in table 20000", () =>
      /default via 2001:db8:100::1 dev ext0/.test(table20000(node)),
    );
    const plan = node.symroute(["plan", "-c", CONFIG]);
    assert.equal(plan.code, 0, plan.stdout);
  },
);
