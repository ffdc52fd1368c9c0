// The explain command's pure helpers: options to a packet, snapshots, the JSON shape.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "@commander-js/extra-typings";
import {
  checkInterfaces,
  dnatNotes,
  registerExplain,
  packetFromOptions,
  readSnapshot,
  traceToJson,
} from "../../src/cli/commands/explain.ts";
import { isSymrouteError } from "../../src/model/errors.ts";
import type { NodeState } from "../../src/model/state.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { tracePacket } from "../../src/simulate/trace.ts";

const caseFile = JSON.parse(readFileSync(new URL("./cases/symroute-node.json", import.meta.url), "utf8")) as {
  state: NodeState;
};

test("options become a packet: hex and decimal marks, protocol names", () => {
  assert.deepEqual(
    packetFromOptions({
      to: "1.2.3.4",
      from: "10.0.0.1",
      iif: "eth0",
      mark: "0x100",
      proto: "tcp",
      dport: "443",
    }),
    { to: "1.2.3.4", from: "10.0.0.1", iif: "eth0", mark: 256, ipproto: 6, dport: 443 },
  );
  assert.deepEqual(packetFromOptions({ to: "1.2.3.4", mark: "16", proto: "17" }), {
    to: "1.2.3.4",
    mark: 16,
    ipproto: 17,
  });
});

test("a mark as plan prints it (VALUE/MASK) is the packet's mark VALUE", () => {
  assert.equal(packetFromOptions({ to: "1.2.3.4", mark: "0x1/0xff" }).mark, 1);
  assert.equal(packetFromOptions({ to: "1.2.3.4", mark: "0x200/0xff00" }).mark, 0x200);
});

test("the help's mark, pasted, takes symroute's reply path; 0x100 would not", () => {
  // symroute's first network with the default marks.mask 0xff: `fwmark 0x1/0xff lookup 100`.
  const state: NodeState = {
    ...caseFile.state,
    rules: caseFile.state.rules.map((r) =>
      r.family === 4 && r.priority === 100 ? { ...r, fwmark: 1, fwmask: 0xff } : r,
    ),
  };
  const index = compileRoutingState(state);
  const ask = (mark: string) =>
    tracePacket(index, packetFromOptions({ from: "10.112.0.5", to: "8.8.8.8", iif: "vpod", mark }));
  assert.equal(ask("0x1/0xff").table, 100);
  assert.notEqual(ask("0x100").table, 100);
});

test("an unknown --iif or --oif is an error that lists the node's interfaces", () => {
  const names = caseFile.state.links.map((l) => l.ifname);
  assert.ok(names.length > 0);
  for (const options of [
    { to: "1.2.3.4", from: "10.0.0.1", iif: "eth0.100" },
    { to: "1.2.3.4", oif: "eth0.100" },
  ]) {
    assert.throws(
      () => checkInterfaces(packetFromOptions(options), caseFile.state, "this node"),
      (e: unknown) =>
        isSymrouteError(e) &&
        e.kind === "invalid-argument" &&
        /--[io]if: no interface named eth0\.100/.test(e.message) &&
        names.every((n) => e.message.includes(n)),
    );
  }
  checkInterfaces(
    packetFromOptions({ to: "1.2.3.4", from: "10.0.0.1", iif: names[0]! }),
    caseFile.state,
    "x",
  );
});

test("bad options are invalid-argument errors that name the option", () => {
  const cases: [Parameters<typeof packetFromOptions>[0], RegExp][] = [
    [{ to: "1.2.3.4", mark: "0xzz" }, /--mark/],
    [{ to: "1.2.3.4", dport: "80" }, /--proto/],
    [{ to: "1.2.3.4", proto: "tcp", dport: "70000" }, /--dport/],
    [{ to: "1.2.3.4", iif: "eth0" }, /--from/],
    [{ to: "1.2.3.4", from: "10.0.0.1", iif: "eth0", oif: "eth1" }, /--oif/],
    // Malformed addresses were "unsupported" answers (exit 3); they are bad input (exit 1).
    [{ to: "1.2.3" }, /--to/],
    [{ to: "1.2.3.4", from: "10.0.0.999" }, /--from/],
    [{ to: "1.2.3.4", from: "2001:db8::1" }, /--from/],
    [{ to: "1.2.3.4", from: "10.0.0.1", iif: "eth0", dnatTo: "pod" }, /--dnat-to/],
    [{ to: "1.2.3.4", mark: "0x3/0x1" }, /--mark/],
    [{ to: "1.2.3.4", mark: "0x1/" }, /--mark/],
    // A protocol name it does not know: the message lists the names it does.
    [{ to: "1.2.3.4", proto: "xyz" }, /--proto must be tcp, udp, icmp, ipv6-icmp, sctp or a protocol number/],
    [{ to: "1.2.3.4", proto: "256" }, /--proto must be a number from 0 to 255/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => packetFromOptions(options),
      (e: unknown) => isSymrouteError(e) && e.kind === "invalid-argument" && message.test(e.message),
    );
  }
});

test("a snapshot round-trips, and a foreign JSON file is refused with a hint", async () => {
  const dir = mkdtempSync(join(tmpdir(), "symroute-explain-"));
  try {
    const good = join(dir, "node.json");
    writeFileSync(good, JSON.stringify({ version: 1, node: caseFile.state }));
    const state = await readSnapshot(good);
    assert.equal(state.node.rules.length, caseFile.state.rules.length);
    assert.deepEqual(state.guards, []);
    const bad = join(dir, "other.json");
    writeFileSync(bad, JSON.stringify({ rules: [] }));
    await assert.rejects(readSnapshot(bad), (e: unknown) => isSymrouteError(e) && e.hint !== undefined);
    await assert.rejects(
      readSnapshot(join(dir, "missing.json")),
      (e: unknown) => isSymrouteError(e) && /missing\.json/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("JSON output has result, table, dev, gateway, rule.priority and steps", () => {
  const index = compileRoutingState(caseFile.state);
  const trace = tracePacket(
    index,
    { from: "10.112.0.5", to: "8.8.8.8", iif: "vpod", mark: 0x100 },
    { explain: true },
  );
  const json = traceToJson(trace) as Record<string, unknown> & {
    rule: { priority: number };
    steps: unknown[];
  };
  assert.equal(json["result"], "unicast");
  assert.equal(json["table"], 100);
  assert.equal(json["dev"], "ext0");
  assert.equal(json["gateway"], "1.2.3.1");
  assert.equal(json.rule.priority, 100);
  assert.ok(json.steps.length >= 3);
  assert.ok(JSON.stringify(json).length > 0);
});

test("the help's and docs' marks are symroute's (VALUE/MASK as plan prints them), not 0x100", () => {
  const program = new Command();
  registerExplain(program);
  let help = "";
  for (const name of ["explain", "snapshot"]) {
    const command = program.commands.find((c) => c.name() === name)!;
    command.configureOutput({ writeOut: (text) => (help += text) });
    command.outputHelp();
  }
  const docs = readFileSync(new URL("../../docs/explain.md", import.meta.url), "utf8");
  for (const text of [help, docs]) {
    assert.match(text, /--mark 0x1\/0xff/);
    assert.doesNotMatch(text, /--mark 0x100\b/);
  }
});

test("a destination in one of symroute's pools without --dnat-to: the answer says kube-proxy DNATs it first", () => {
  const entries = [{ network: "public", family: 4 as const, iif: "ext0", pools: ["1.2.3.0/24"], value: 1 }];
  const [note, ...rest] = dnatNotes({ from: "203.0.113.10", to: "1.2.3.4", iif: "ext0" }, entries, []);
  assert.equal(rest.length, 0);
  assert.match(note ?? "", /1\.2\.3\.4 is in 1\.2\.3\.0\/24, a pool of network public on ext0/);
  assert.match(note ?? "", /kube-proxy DNATs .* explain does not model that DNAT/);
  assert.match(note ?? "", /--dnat-to BACKEND/);
  // A locally generated packet: ask --to the backend.
  assert.match(dnatNotes({ to: "1.2.3.4" }, entries, []).join(""), /--to BACKEND/);
  // With --dnat-to, or outside the pools, or another family: nothing to say.
  assert.deepEqual(
    dnatNotes({ from: "203.0.113.10", to: "1.2.3.4", iif: "ext0", dnatTo: "10.112.0.5" }, entries, []),
    [],
  );
  assert.deepEqual(dnatNotes({ to: "1.2.4.4" }, entries, []), []);
  assert.deepEqual(dnatNotes({ to: "2001:db8::1" }, entries, []), []);
  // A guard's exempt pools count too (a snapshot with guards only).
  const guard = {
    family: 6 as const,
    iif: "ext0",
    mode: "strict" as const,
    exempt: ["2001:db8:1::/64"],
    reason: "",
  };
  assert.equal(dnatNotes({ to: "2001:db8:1::5" }, [], [guard]).length, 1);
});

test("a snapshot carries symroute's firewall spec, and a malformed one is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "symroute-explain-"));
  try {
    const firewallSpec = {
      backend: "nftables",
      mask: 0xff,
      entries: [{ network: "public", family: 4, iif: "ext0", pools: ["1.2.3.0/24"], value: 1 }],
    };
    const good = join(dir, "node.json");
    writeFileSync(good, JSON.stringify({ version: 1, node: caseFile.state, firewallSpec }));
    assert.deepEqual((await readSnapshot(good)).firewallSpec, firewallSpec);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ version: 1, node: caseFile.state, firewallSpec: { entries: 1 } }));
    await assert.rejects(
      readSnapshot(bad),
      (e: unknown) => isSymrouteError(e) && /firewallSpec/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
