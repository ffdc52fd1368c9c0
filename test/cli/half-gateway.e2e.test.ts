// No half-configured families (issue 17 item 4): a network with pools of both families and a
// gateway for IPv4 only. plan warns that replies to IPv6 clients beyond the pool's link follow main
// (here its default route via eth0), and the traffic shows why: a client behind the router gets no
// IPv6 answer. With the IPv6 gateway added the warning goes and the client is answered.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DoctorReport } from "../../src/verify/doctor.ts";
import { createNode, e2eUnavailable, type Netns, startHttpServer } from "../support/netns.ts";
import {
  IPV6_CLIENT,
  IPV6_LB,
  IPV6_NODE,
  clientReachesLb as reachesLb,
  ipv6RouterTopology,
  mustIn,
} from "../support/ipv6-router.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-half-"));
chmodSync(dir, 0o755);

const PORT = 8082;
const CLIENT = IPV6_CLIENT;
const LB = IPV6_LB;
const NODE = IPV6_NODE;

function configFile(name: string, gateway: string): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: ${gateway}
`,
  );
  chmodSync(path, 0o644);
  return path;
}
const HALF = configFile("half.yaml", "1.2.3.1");
const FULL = configFile("full.yaml", `[1.2.3.1, "2001:db8:100::1"]`);

const topology = (node: Netns): void => ipv6RouterTopology(node, PORT);
const clientReachesLb = (node: Netns): boolean => reachesLb(node, PORT);

test(
  "an IPv6 pool without an IPv6 gateway next to an IPv4 one: plan warns, and the traffic agrees",
  { skip },
  async (t) => {
    const node = createNode(t, { dualStack: true });
    // A Kubernetes node forwards (to its pods): with IPv6 forwarding off the kernel would pick among
    // routers by reachability, which doctor's simulator does not model.
    mustIn(node, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    topology(node);
    await startHttpServer(t, node, PORT);

    const planned = node.symroute(["plan", "-c", HALF, "-o", "json"]);
    assert.equal(planned.code, 2, planned.stderr);
    const warnings = (JSON.parse(planned.stdout) as { warnings: string[] }).warnings;
    const warning = warnings.find((w) =>
      /IPv6 pools 2001:db8:100::\/64 have no IPv6 gateway while IPv4 has 1\.2\.3\.1/.test(w),
    );
    assert.ok(warning, JSON.stringify(warnings));
    assert.match(
      warning,
      /replies to IPv6 clients beyond that link by main, not back through ext0 \(main would send them via 2001:db8:1::1 on eth0\)/,
    );
    const text = node.symroute(["plan", "-c", HALF]);
    assert.match(text.stdout, /warning: network "public": IPv6 pools/);

    const applied = node.symroute(["apply", "-c", HALF]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /warning: network "public": IPv6 pools/);
    // What the warning says, from the kernel and from the traffic.
    assert.match(
      mustIn(node, ["ip", "-6", "route", "get", CLIENT, "from", NODE]),
      /via 2001:db8:1::1 dev eth0/,
    );
    assert.equal(clientReachesLb(node), false, "the client behind the router gets no IPv6 answer");
    // doctor, asked about that client, agrees with the traffic (it used to say "ok ... the reply
    // leaves by ext0 (direct)" and "Healthy"), and with explain's `via 2001:db8:1::1 dev eth0`.
    const doctor = (config: string): DoctorReport => {
      const r = node.symroute(["doctor", "-c", config, "--client", CLIENT, "-o", "json"]);
      assert.ok(r.code === 0 || r.code === 3, `doctor exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as DoctorReport;
    };
    const halfReport = doctor(HALF);
    const toClient = halfReport.findings.filter((f) => f.family === 6 && f.client === CLIENT);
    assert.ok(toClient.length > 0, JSON.stringify(halfReport.findings, null, 2));
    for (const f of toClient) {
      assert.equal(f.ok, false, f.summary);
      assert.match(f.summary, /beyond ext0's link, leaves by eth0 via 2001:db8:1::1/);
    }
    assert.equal(halfReport.healthy, false);

    const fixed = node.symroute(["apply", "-c", FULL, "-o", "json"]);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.ok(
      !(JSON.parse(fixed.stdout) as { warningDetails: { kind: string }[] }).warningDetails.some(
        (w) => w.kind === "half-gateway",
      ),
    );
    assert.equal(clientReachesLb(node), true, "with the IPv6 gateway the reply goes back through ext0");
    const fullPaths = doctor(FULL).findings.filter((f) => f.family === 6 && f.client === CLIENT);
    assert.ok(fullPaths.length > 0);
    for (const f of fullPaths) assert.equal(f.ok, true, f.summary);
  },
);
