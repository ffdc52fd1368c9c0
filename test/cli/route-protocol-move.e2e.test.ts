// A change of `routeProtocol` alone is a move, like a change of the rule band: symroute owns what
// it created under the protocol its state file records, and one apply re-creates every route and
// rule under the new number and deletes the old ones. Proved with `ip -j` dumps: after the apply
// every route and rule of symroute's carries the new number and none the old, the state file
// records the new number, and a delete (from the state alone) leaves the node as it was.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  assertSameDump,
  configDir,
  createNode,
  e2eUnavailable,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-proto-");
const OLD = 201;
const NEW = 202;
// Three networks with a gateway (connmark: tables, fwmark rules, the skip rule and its nop), one of
// them dual stack, and one pool routed on its link in main (a route outside symroute's tables).
const withProtocol = (protocol: number | undefined): string =>
  writeConfigFile(
    dir,
    `proto-${protocol ?? "default"}.yaml`,
    `${protocol === undefined ? "" : `routeProtocol: ${protocol}\n`}networks:
  - { name: red, addresses: [1.2.3.0/24, "2001:db8:100::/64"], interface: ext0, gateway: [1.2.3.1, "2001:db8:100::1"] }
  - { name: blue, addresses: [5.6.7.0/24], interface: ext0, gateway: 5.6.7.1 }
  - { name: green, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1 }
  - { name: onlink, addresses: [10.9.8.0/24], interface: ext0, method: route }
`,
  );

interface Listed {
  readonly protocol?: string | number;
  readonly priority?: number;
  readonly dst?: string;
  readonly table?: string | number;
}

/** Every route and rule of the node (both families, every table), each as its dump line. */
function routesAndRules(node: Netns): { text: string; protocol: string }[] {
  const listings = [
    ["ip", "-j", "-4", "route", "show", "table", "all"],
    ["ip", "-j", "-6", "route", "show", "table", "all"],
    ["ip", "-j", "-4", "rule", "show"],
    ["ip", "-j", "-6", "rule", "show"],
  ];
  return listings.flatMap((argv) => {
    const listed = node.exec(argv);
    assert.equal(listed.code, 0, listed.stderr);
    return (JSON.parse(listed.stdout || "[]") as Listed[]).map((o) => ({
      text: `${argv[2]} ${argv[3]} ${JSON.stringify(o)}`,
      protocol: String(o.protocol ?? ""),
    }));
  });
}

const withProto = (node: Netns, protocol: number): string[] =>
  routesAndRules(node)
    .filter((o) => o.protocol === String(protocol))
    .map((o) => o.text);

function savedState(node: Netns): { routeProtocol?: number; inProgress?: boolean } {
  const [netns] = readdirSync(node.stateDir).filter((d) => d.startsWith("netns-"));
  assert.ok(netns !== undefined, `a state directory in ${node.stateDir}`);
  return JSON.parse(readFileSync(join(node.stateDir, netns, "state.json"), "utf8")) as {
    routeProtocol?: number;
  };
}

test(
  "routeProtocol changed alone: plan shows the move, apply re-creates every route and rule under the new number, delete finds them",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    const start = node.dump();
    assert.deepEqual(withProto(node, OLD), [], "no route or rule with the old number before symroute");

    const first = node.symroute(["apply", "-c", withProtocol(undefined)]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const before = withProto(node, OLD);
    const rules = before.filter((l) => l.includes(" rule "));
    assert.ok(rules.length >= 5, `fwmark, skip and nop rules under ${OLD}:\n${before.join("\n")}`);
    assert.ok(before.length > rules.length, `routes under ${OLD}:\n${before.join("\n")}`);
    assert.equal(savedState(node).routeProtocol, OLD);

    const moved = withProtocol(NEW);
    const plan = node.symroute(["plan", "-c", moved, "-o", "json", "--payloads"]);
    assert.equal(plan.code, 2, `changes pending (exit 2):\n${plan.stdout}${plan.stderr}`);
    const planned = JSON.parse(plan.stdout) as {
      inSync: boolean;
      changes: { text: string }[];
      conflicts: unknown[];
      warnings: string[];
      payloads: { ip: { ipv4: string[]; ipv6: string[] } };
    };
    assert.equal(planned.inSync, false);
    assert.deepEqual(planned.conflicts, [], "its own objects under the old number are no conflict");
    assert.ok(
      planned.warnings.some((w) =>
        w.startsWith(
          `routeProtocol moves from ${OLD} (the state file's) to ${NEW}: ${before.length} routes and rules`,
        ),
      ),
      planned.warnings.join("\n"),
    );
    const texts = planned.changes.map((c) => c.text);
    assert.ok(
      texts.some((c) => c.includes(`proto ${NEW}`)),
      `objects under ${NEW}:\n${texts.join("\n")}`,
    );

    // Each rule is added under the new number before it is deleted under the old one (the kernel
    // keeps the two apart), and each route is replaced in place: no moment without either.
    for (const lines of [planned.payloads.ip.ipv4, planned.payloads.ip.ipv6]) {
      const deleted = lines.filter((l) => l.startsWith("rule del ") && l.endsWith(` proto ${OLD}`));
      assert.ok(deleted.length > 0, lines.join("\n"));
      for (const del of deleted) {
        const add = `${del.slice(0, -` proto ${OLD}`.length).replace("rule del ", "rule add ")} proto ${NEW}`;
        assert.ok(lines.includes(add), `${add} in:\n${lines.join("\n")}`);
        assert.ok(lines.indexOf(add) < lines.indexOf(del), `${add} before ${del}:\n${lines.join("\n")}`);
      }
      assert.ok(
        lines
          .filter((l) => l.startsWith("route "))
          .every((l) => l.startsWith("route replace ") && l.includes(` proto ${NEW} `)),
        lines.join("\n"),
      );
    }

    // doctor: the move is pending (exit 3, problems found), and the rules under the old number are
    // symroute's, never "not symroute's".
    const doctor = node.symroute(["doctor", "-c", moved, "-o", "json"]);
    assert.equal(doctor.code, 3, doctor.stdout + doctor.stderr);
    const findings = (
      JSON.parse(doctor.stdout) as {
        findings: { path: string; ok: boolean; summary: string; cause?: string }[];
      }
    ).findings;
    assert.ok(
      findings.some((f) => f.path === "symroute" && !f.ok && /changes? pending/.test(f.summary)),
      JSON.stringify(findings, null, 2),
    );
    assert.ok(!findings.some((f) => /not symroute's/.test(f.cause ?? "")), JSON.stringify(findings, null, 2));

    const applied = node.symroute(["apply", "-c", moved]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.deepEqual(withProto(node, OLD), [], `nothing left under ${OLD}`);
    const after = withProto(node, NEW);
    // The same objects, only their number changed.
    assert.deepEqual(
      after.map((l) => l.replace(`"protocol":"${NEW}"`, "")).sort(),
      before.map((l) => l.replace(`"protocol":"${OLD}"`, "")).sort(),
      `the same routes and rules under ${NEW}:\n${after.join("\n")}`,
    );
    const state = savedState(node);
    assert.equal(state.routeProtocol, NEW);
    assert.equal(state.inProgress, undefined);
    const again = node.symroute(["plan", "-c", moved]);
    assert.equal(again.code, 0, again.stdout + again.stderr);

    // The state alone names the number: delete without the config removes everything.
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
    assert.deepEqual([...withProto(node, OLD), ...withProto(node, NEW)], []);
    assertSameDump(start, node.dump(), "after apply, move and delete");
  },
);
