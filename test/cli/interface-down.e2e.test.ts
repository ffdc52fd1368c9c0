// A pool's interface that is administratively down: the kernel refuses any route through it (IPv4
// "Device for nexthop is not up", IPv6 "Nexthop device is not up") and deletes those it had when
// the link went down (measured on Linux 6.18). Every apply used to fail on that route and roll back,
// so one down interface kept every other network from converging (and the agent unready). Now its
// routes are left out with a warning that says so: apply converges the rest (exit 0), plan is in
// sync, and once the link is up the next apply adds its routes. The firewall and the fwmark rule of
// its network stay.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  addPeerLink,
  configDir,
  createNode,
  e2eUnavailable,
  must,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const CONFIG = writeConfigFile(
  configDir("symroute-down-"),
  "down.yaml",
  `networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: second, addresses: [198.51.100.0/24, "2001:db8:200::/64"], interface: ext1, gateway: [198.51.100.1, "2001:db8:200::1"] }
`,
);

test(
  "a pool's interface that is down: its routes wait for it, every other network converges",
  { skip },
  (t) => {
    const node = createNode(t);
    addPeerLink(node, "ext1");
    const routesVia = (dev: string): string[] =>
      ["-4", "-6"].flatMap((family) =>
        (
          JSON.parse(
            must(["ip", "-n", node.name, "-j", family, "route", "show", "table", "all", "dev", dev]),
          ) as {
            dst: string;
            table?: string;
          }[]
        )
          .filter((r) => r.table !== "local" && !String(r.dst).startsWith("fe80"))
          .map((r) => `${r.dst} table ${r.table ?? "main"}`),
      );

    const applied = node.symroute(["apply", "-c", CONFIG, "-o", "json"]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const report = JSON.parse(applied.stdout) as { warnings: string[]; inSync: boolean };
    assert.ok(
      report.warnings.some((w) =>
        w.startsWith(
          'interface "ext1" (network "second") is down: requests cannot arrive; its routes are left out until it is up',
        ),
      ),
      report.warnings.join("\n"),
    );
    assert.deepEqual(routesVia("ext1"), []);
    assert.deepEqual(routesVia("ext0").sort(), ["1.2.3.0/24 table 20000", "default table 20000"]);
    const rules = must(["ip", "-n", node.name, "rule"]);
    assert.match(rules, /fwmark 0x2\/0xff lookup 20001/, "its rule stays");
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0, "in sync while it is down");

    must(["ip", "-n", node.name, "link", "set", "ext1", "up"]);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 2, "up: its routes are pending");
    const again = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.deepEqual(routesVia("ext1").sort(), [
      "198.51.100.0/24 table 20001",
      "2001:db8:200::/64 table 20001",
      "default table 20001",
      "default table 20001",
    ]);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
  },
);
