// A path the simulator cannot tell (here an IPv6 packet on a node with IPv6 forwarding off and two
// routers to choose from, where the kernel scores routers by neighbour reachability) is not ok, and
// its fix is the explain command that asks about exactly that packet, with doctor's state
// directory: run as printed, it shows the step the simulator stops at (exit 3, not modelled), not a
// bare "see symroute explain". (One default route alone is told: docs/explain.md.)

import { test } from "node:test";
import assert from "node:assert/strict";
import { configDir, createNode, e2eUnavailable, run, writeConfigFile } from "../support/netns.ts";
import { explainPacketCommand } from "../../src/verify/doctor.ts";

const skip = e2eUnavailable();
const CONFIG = writeConfigFile(
  configDir("symroute-doctor-unsupported-"),
  "dual.yaml",
  `networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:4::/64"]
    interface: ext0
    gateway: 1.2.3.1
`,
);

interface Finding {
  path: string;
  family: number;
  ok: boolean;
  cause?: string;
  fix?: string;
}

test(
  "doctor's fix for a path it cannot tell is the explain command for that packet, runnable as printed",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    // A second IPv6 router in main (as router advertisements give a host): the IPv6 pools have no
    // gateway, so replies to a client beyond ext0's link follow main, which could take either.
    const second = node.exec([
      "ip",
      "-6",
      "route",
      "add",
      "default",
      "via",
      "2001:db8:1::2",
      "dev",
      "eth0",
      "metric",
      "2048",
    ]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(node.exec(["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout.trim(), "0");
    const doctor = node.symroute(["doctor", "-c", CONFIG, "-o", "json"]);
    assert.equal(doctor.code, 3, doctor.stdout + doctor.stderr);
    const findings = (JSON.parse(doctor.stdout) as { findings: Finding[] }).findings;
    const untold = findings.find((f) => f.cause === "the simulator does not model this state");
    assert.ok(untold !== undefined, JSON.stringify(findings, null, 2));
    assert.equal(untold.ok, false);
    const command = /^run `symroute (explain [^`]*)`/.exec(untold.fix ?? "")?.[1];
    assert.ok(command !== undefined, untold.fix);
    assert.match(command, new RegExp(`^explain --state-dir ${node.stateDir} --from \\S+ --to \\S+ `));

    // symrouteArgv appends --state-dir again (the same directory): the printed one comes first.
    const explained = run(node.symrouteArgv(command.split(" ")));
    assert.equal(explained.code, 3, explained.stdout + explained.stderr);
    assert.match(explained.stdout, /^verdict: unsupported .*not modelled/m);
  },
);

test("explainPacketCommand spells every field of the packet as explain's options", () => {
  assert.equal(
    explainPacketCommand("symroute explain", {
      from: "203.0.113.10",
      to: "1.2.3.4",
      dnatTo: "10.112.0.5",
      iif: "ext0",
      mark: 0x1,
      ipproto: 6,
      sport: 40000,
      dport: 8080,
    }),
    "symroute explain --from 203.0.113.10 --to 1.2.3.4 --iif ext0 --dnat-to 10.112.0.5 --mark 0x1 --proto tcp --sport 40000 --dport 8080",
  );
  assert.equal(
    explainPacketCommand("symroute explain", { to: "::1", ipproto: 132 }),
    "symroute explain --to ::1 --proto 132",
  );
});
