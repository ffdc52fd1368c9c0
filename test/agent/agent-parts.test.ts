import { strict as assert } from "node:assert";
import { request } from "node:http";
import { describe, it } from "node:test";
import { parseDuration } from "../../src/agent/duration.ts";
import { isLoopback, parseListen, startHttpServer } from "../../src/agent/http.ts";
import { isSymrouteFirewallEvent, kernelEventConcerns } from "../../src/agent/kernel-monitor.ts";
import { acquireAgentLock } from "../../src/agent/lock.ts";
import { trackOwnedRpFilters } from "../../src/agent/owned-sysctls.ts";
import type { SavedState, StateStore } from "../../src/engine/ports.ts";
import { createMetrics, METRIC_NAMES } from "../../src/agent/metrics.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

function call(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path }, (res) => {
      let body = "";
      res.on("data", (b: Buffer) => (body += b.toString("utf8")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("agent command-line values", () => {
  it("parses --listen, refusing what is not HOST:PORT", () => {
    assert.deepEqual(parseListen("127.0.0.1:9473"), { host: "127.0.0.1", port: 9473 });
    assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
    for (const bad of [":9473", "127.0.0.1", "127.0.0.1:99999", "a:b:c", ""]) {
      assert.throws(
        () => parseListen(bad),
        (e: unknown) => isSymrouteError(e) && e.kind === "invalid-argument",
        bad,
      );
    }
    assert.equal(isLoopback("127.0.0.1"), true);
    assert.equal(isLoopback("::1"), true);
    assert.equal(isLoopback("0.0.0.0"), false);
    assert.equal(isLoopback("192.0.2.1"), false);
  });

  it("parses durations", () => {
    assert.equal(parseDuration("250ms", "--x"), 250);
    assert.equal(parseDuration("30s", "--x"), 30_000);
    assert.equal(parseDuration("5m", "--x"), 300_000);
    assert.equal(parseDuration("60", "--x"), 60_000);
    assert.equal(parseDuration("0", "--x"), 0);
    assert.throws(
      () => parseDuration("soon", "--resync-interval"),
      /--resync-interval "soon" is not a duration/,
    );
  });
});

describe("metrics", () => {
  it("exports the documented names on a registry of its own", async () => {
    const metrics = createMetrics();
    metrics.reconciles.inc({ result: "success" });
    const text = await metrics.registry.metrics();
    for (const name of Object.values(METRIC_NAMES))
      assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), name);
    assert.equal(createMetrics().registry === metrics.registry, false);
  });
});

describe("HTTP endpoints", () => {
  it("serve health, readiness and metrics, and refuse every method that could change something", async () => {
    const metrics = createMetrics();
    let ready = false;
    const server = await startHttpServer({
      listen: { host: "127.0.0.1", port: 0 },
      registry: metrics.registry,
      readiness: () => ({ ready, reason: ready ? "converged" : "starting" }),
    });
    try {
      const port = server.address.port;
      assert.equal((await call(port, "GET", "/healthz")).status, 200);
      assert.deepEqual(await call(port, "GET", "/readyz"), { status: 503, body: "starting\n" });
      ready = true;
      assert.equal((await call(port, "GET", "/readyz")).status, 200);
      assert.match((await call(port, "GET", "/metrics")).body, /symroute_reconciles_total/);
      for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
        assert.equal((await call(port, method, "/readyz")).status, 405, method);
      }
      assert.equal((await call(port, "GET", "/apply")).status, 404);
    } finally {
      await server.close();
    }
  });
});

describe("agent lock", () => {
  it("lets one holder in per network namespace, names it to the second, and frees on release", async () => {
    const name = `symroute-agent-unit-${process.pid}`;
    const first = await acquireAgentLock(name);
    await assert.rejects(acquireAgentLock(name), (e: unknown) => {
      assert.ok(isSymrouteError(e));
      assert.equal(e.kind, "busy");
      assert.match(e.message, new RegExp(`pid ${process.pid}`));
      return true;
    });
    await first.release();
    const again = await acquireAgentLock(name);
    await again.release();
  });
});

describe("kernel events the configuration is concerned with", () => {
  // Lines as `ip -o monitor label rule route link address` printed them (iproute2 6.1) while a veth
  // pair came and went, with ext0 the configured interface.
  const interfaces = new Set(["ext0", "eth1"]);
  const concerns = (line: string): boolean => kernelEventConcerns(line, interfaces);

  it("drops a pod's veth: its link, addresses and routes in main and local", () => {
    for (const line of [
      "[LINK]5: podx@podxp: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 92:e3:dd:a8:5f:13 brd ff:ff:ff:ff:ff:ff",
      "[LINK]Deleted 4: podxp@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 56:d4:b5:d5:bc:a8 brd ff:ff:ff:ff:ff:ff",
      "[ADDR]5: podx    inet 10.9.9.1/24 scope global podx\\       valid_lft forever preferred_lft forever",
      "[ADDR]Deleted 4: podxp    inet6 fe80::54d4:b5ff:fed5:bca8/64 scope link tentative \\       valid_lft forever preferred_lft forever",
      "[ROUTE]multicast ff00::/8 dev podxp table local proto kernel metric 256 pref medium",
      "[ROUTE]fe80::/64 dev podx proto kernel metric 256 pref medium",
      "[ROUTE]local 10.9.9.1 dev podx table local proto kernel scope host src 10.9.9.1 ",
      "[ROUTE]Deleted 10.9.9.0/24 dev podx proto kernel scope link src 10.9.9.1 ",
      "[ROUTE]10.1.2.3 dev cali12345 scope link",
      // As `ip monitor netconf` printed them (iproute2 6.1): a veth's first event lists every
      // setting; a pod interface's rp_filter, other settings, a link gone.
      "[NETCONF]inet podx forwarding off rp_filter off mc_forwarding off proxy_neigh off ignore_routes_with_linkdown off ",
      "[NETCONF]inet podx rp_filter strict ",
      "[NETCONF]inet all forwarding on ",
      "[NETCONF]inet6 ext0 forwarding on ",
      "[NETCONF]Deleted inet podx ",
    ])
      assert.equal(concerns(line), false, line);
  });

  it("keeps rules, other tables, main's default routes and the configured interfaces", () => {
    for (const line of [
      "[RULE]900:\tfrom all fwmark 0x7 lookup 300",
      "[RULE]Deleted 1001:\tfrom all fwmark 0x1/0x3fff lookup 20000 proto 201",
      "[ROUTE]10.10.0.0/16 dev podx table 300 scope link ",
      "[ROUTE]default via 10.9.9.2 dev podx table 300 ",
      "[ROUTE]default via 192.168.1.1 dev eth0 ",
      "[ROUTE]Deleted default via 192.168.1.1 dev eth0 ",
      "[ROUTE]unreachable default metric 4278198272",
      "[ROUTE]1.2.3.0/24 dev ext0 proto 201 scope link ",
      "[ROUTE]local 1.2.3.4 dev ext0 table local proto kernel scope host src 1.2.3.4 ",
      "[LINK]3: ext0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default",
      "[LINK]Deleted 7: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default",
      "[ADDR]3: ext0    inet6 fe80::d0e0:41ff:fe83:e471/64 scope link \\       valid_lft forever preferred_lft forever",
      "an unlabelled line",
      // rp_filter of conf.all, conf.default and a configured interface changed.
      "[NETCONF]inet all rp_filter loose ",
      "[NETCONF]inet default rp_filter strict ",
      "[NETCONF]inet ext0 rp_filter strict ",
    ])
      assert.equal(concerns(line), true, line);
  });

  it("keeps rp_filter of the other interfaces whose rp_filter symroute owns (raised when it lowered conf.all)", () => {
    const owned = new Set(["eth0", "lo"]);
    for (const line of ["[NETCONF]inet eth0 rp_filter off ", "[NETCONF]inet lo rp_filter loose "]) {
      assert.equal(concerns(line), false, `without the state's record: ${line}`);
      assert.equal(kernelEventConcerns(line, interfaces, owned), true, line);
    }
    // Their other settings, and a pod's veth, still do not count.
    assert.equal(kernelEventConcerns("[NETCONF]inet eth0 forwarding on ", interfaces, owned), false);
    assert.equal(kernelEventConcerns("[NETCONF]inet podx rp_filter strict ", interfaces, owned), false);
  });
});

describe("the rp_filter sysctls symroute owns, from its state file", () => {
  const stateWith = (names: string[]): SavedState => ({
    version: 1,
    previousSysctls: Object.fromEntries(names.map((n) => [n, "0"])),
    allocations: {},
    createdLinks: [],
  });
  it("follows what the state store reads, writes and removes", async () => {
    let stored: SavedState | undefined = stateWith([
      "net/ipv4/conf/all/rp_filter",
      "net/ipv4/conf/eth0/rp_filter",
      "net/ipv4/conf/all/arp_ignore",
    ]);
    const store: StateStore = {
      location: "/state.json",
      read: async () => stored,
      write: async (state) => {
        stored = state;
      },
      remove: async () => {
        stored = undefined;
      },
      lock: async () => async () => {},
    };
    const owned = trackOwnedRpFilters(store);
    assert.deepEqual([...owned.interfaces()], []);
    assert.equal(owned.store.location, "/state.json");
    await owned.store.read();
    assert.deepEqual([...owned.interfaces()].sort(), ["all", "eth0"]);
    await owned.store.write(stateWith(["net/ipv4/conf/lo/rp_filter", "net/ipv4/conf/eth0.100/rp_filter"]));
    assert.deepEqual([...owned.interfaces()].sort(), ["eth0.100", "lo"]);
    assert.deepEqual(Object.keys(stored?.previousSysctls ?? {}).length, 2, "written through");
    await owned.store.remove();
    assert.deepEqual([...owned.interfaces()], []);
    assert.equal(stored, undefined);
  });
});

describe("firewall events that are symroute's", () => {
  // Lines as `nft monitor` (nftables 1.0.9) printed them while rules of symroute's iptables front
  // end and its ARP probe table were removed by hand, and while other tools changed theirs.
  it("keeps every chain and table of symroute's, and deletions in mangle's hooks", () => {
    for (const line of [
      "delete rule ip mangle SYMROUTE-G-ext0 handle 19",
      "delete rule ip mangle SYMROUTE-CLASSIFY handle 11",
      "delete rule ip6 mangle SYMROUTE-GUARD handle 4",
      "delete rule ip mangle SYMROUTE-PRE handle 7",
      // symroute's jump into its chains, deleted: nft names the handle only.
      "delete rule ip mangle PREROUTING handle 16",
      "delete rule ip6 mangle OUTPUT handle 3",
      "delete rule arp symroute probes handle 3",
      "delete table arp symroute",
      "delete table inet symroute",
      // The nftables front end's guards: one ingress chain per guarded interface.
      "delete rule netdev symroute guard_ext0 handle 5",
      "delete chain netdev symroute guard_ext0",
      'add rule inet symroute prerouting ct state new meta l4proto tcp comment "x"',
    ])
      assert.equal(isSymrouteFirewallEvent(line), true, line);
  });

  it("drops other tools' tables and chains", () => {
    for (const line of [
      "add rule ip nat KUBE-SERVICES ip daddr 10.96.0.1 tcp dport 443 jump KUBE-SVC-NPX46M4PTMTKRN6Y",
      "delete rule ip filter FORWARD handle 12",
      "add rule ip mangle PREROUTING counter jump cali-PREROUTING",
      "# new generation 22 by process 28396 (iptables)",
      "delete table ip kube-proxy",
    ])
      assert.equal(isSymrouteFirewallEvent(line), false, line);
  });
});
