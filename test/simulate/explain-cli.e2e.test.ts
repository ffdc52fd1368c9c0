// `symroute snapshot` and `symroute explain` end to end, in a fresh namespace: the snapshot taken
// there, explained elsewhere, agrees with the live explain and with `ip route get`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runTool } from "../../src/adapters/exec.ts";
import { CLI, createNode, e2eUnavailable } from "../support/netns.ts";
import { KernelLab, namespacesAvailable } from "./support/kernel-lab.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

test(
  "snapshot then explain --state agrees with live explain and ip route get",
  { timeout: 120_000 },
  async (t) => {
    const missing = await namespacesAvailable();
    if (missing !== undefined) {
      t.skip(missing);
      return;
    }
    const lab = await KernelLab.create("sr-simcli");
    const dir = mkdtempSync(join(tmpdir(), "symroute-explain-e2e-"));
    t.after(async () => {
      await lab.destroy();
      rmSync(dir, { recursive: true, force: true });
    });
    await lab.writeSysctls({
      "net/ipv4/ip_forward": "1",
      "net/ipv4/conf/all/rp_filter": "0",
      "net/ipv4/conf/e0/rp_filter": "1",
    });
    await lab.batch(4, [
      "rule add fwmark 0x100/0x100 lookup 100 priority 100",
      "route add 203.0.113.0/24 dev e2 table 100",
      "route add default via 203.0.113.1 dev e2 onlink table 100",
      "route add default via 192.0.2.254 dev e0",
    ]);
    const cli = (args: string[]) =>
      runTool("ip", ["netns", "exec", lab.ns, process.execPath, "--import", "tsx", MAIN, ...args], {
        allowFailure: true,
      });

    const snap = await cli(["snapshot"]);
    assert.equal(snap.code, 0, snap.stderr);
    const file = join(dir, "node.json");
    writeFileSync(file, snap.stdout);
    assert.equal((JSON.parse(snap.stdout) as { version: number }).version, 1);

    const packet = ["--from", "198.51.100.20", "--to", "10.1.2.3", "--iif", "e1", "--mark", "0x100"];
    const offline = await runTool(
      process.execPath,
      ["--import", "tsx", MAIN, "explain", "--state", file, ...packet, "-o", "json"],
      {
        allowFailure: true,
      },
    );
    assert.equal(offline.code, 0, offline.stderr);
    const json = JSON.parse(offline.stdout) as {
      result: string;
      table: number;
      dev: string;
      gateway: string;
      rule: { priority: number };
    };
    assert.deepEqual(
      {
        result: json.result,
        table: json.table,
        dev: json.dev,
        gateway: json.gateway,
        rule: json.rule.priority,
      },
      { result: "unicast", table: 100, dev: "e2", gateway: "203.0.113.1", rule: 100 },
    );

    const live = await cli(["explain", ...packet, "-o", "json"]);
    assert.equal(live.code, 0, live.stderr);
    assert.deepEqual(JSON.parse(live.stdout), JSON.parse(offline.stdout));

    const kernel = await runTool("ip", [
      "-n",
      lab.ns,
      "-j",
      "route",
      "get",
      "10.1.2.3",
      "from",
      "198.51.100.20",
      "iif",
      "e1",
      "mark",
      "0x100",
    ]);
    const answer = (JSON.parse(kernel.stdout) as { dev: string; gateway: string }[])[0];
    assert.equal(answer?.dev, "e2");
    assert.equal(answer?.gateway, "203.0.113.1");

    // Without the mark the reply follows main; the text output names every rule.
    const text = await runTool(
      process.execPath,
      [
        "--import",
        "tsx",
        MAIN,
        "explain",
        "--state",
        file,
        "--from",
        "198.51.100.20",
        "--to",
        "10.1.2.3",
        "--iif",
        "e1",
      ],
      {
        allowFailure: true,
      },
    );
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /100: from all fwmark 0x100\/0x100 lookup 100 -> no match \(mark 0x0\)/);
    assert.match(text.stdout, /verdict: unicast via 192\.0\.2\.254 dev e0 table main/);
  },
);

test(
  "explain: a malformed address or mark exits 1 naming the option; an unknown --iif lists the interfaces",
  { timeout: 120_000 },
  async (t) => {
    const missing = await namespacesAvailable();
    if (missing !== undefined) {
      t.skip(missing);
      return;
    }
    const lab = await KernelLab.create("sr-simbad");
    t.after(() => lab.destroy());
    const cli = (args: string[]) =>
      runTool(
        "ip",
        ["netns", "exec", lab.ns, process.execPath, "--import", "tsx", MAIN, "explain", ...args],
        {
          allowFailure: true,
        },
      );
    // Before: "unsupported" with exit 3, as if the kernel's behaviour were the question.
    for (const [args, option] of [
      [["--to", "10.1.2"], "--to"],
      [["--to", "10.1.2.3", "--from", "198.51.100.300", "--iif", "e1"], "--from"],
      [["--to", "10.1.2.3", "--mark", "0x100/0x1"], "--mark"],
    ] as const) {
      const r = await cli([...args]);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.ok(r.stderr.includes(option), r.stderr);
    }
    // Before: "no interface named eth0.100 in the state", nothing about the ones there are.
    const r = await cli(["--from", "198.51.100.20", "--to", "10.1.2.3", "--iif", "eth0.100"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /--iif: no interface named eth0\.100/);
    for (const name of ["lo", "e0", "e1", "e2"]) assert.match(r.stderr, new RegExp(`\\b${name}\\b`));
  },
);

test(
  "after apply: explain of an LB address says kube-proxy DNATs it first; snapshot carries symroute's firewall",
  { skip: e2eUnavailable(), timeout: 120_000 },
  (t) => {
    const node = createNode(t);
    const dir = mkdtempSync(join(tmpdir(), "symroute-explain-dnat-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, "symroute.yaml");
    writeFileSync(
      config,
      "firewall: nftables\nnetworks:\n  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }\n",
    );
    const applied = node.symroute(["apply", "-c", config]);
    assert.equal(applied.code, 0, applied.stderr);

    // Before: the answer for 1.2.3.4 itself ("local" here), not a word about kube-proxy's DNAT.
    const ask = ["--from", "203.0.113.10", "--to", "1.2.3.4", "--iif", "ext0"];
    const live = node.symroute(["explain", ...ask, "-o", "json"]);
    assert.equal(live.code, 0, live.stderr);
    const notes = (JSON.parse(live.stdout) as { notes: string[] }).notes.join("\n");
    assert.match(
      notes,
      /1\.2\.3\.4 is in 1\.2\.3\.0\/24, a pool of network public on ext0: kube-proxy DNATs/,
    );
    assert.match(notes, /--dnat-to BACKEND/);
    const text = node.symroute(["explain", ...ask]);
    assert.match(text.stdout, /^note: 1\.2\.3\.4 is in 1\.2\.3\.0\/24/m);
    // Asked as the help says, with the backend: no such note.
    const dnat = node.symroute(["explain", ...ask, "--dnat-to", "192.168.1.10", "-o", "json"]);
    assert.equal(dnat.code, 0, dnat.stderr);
    assert.deepEqual((JSON.parse(dnat.stdout) as { notes: string[] }).notes, []);

    // The snapshot holds the firewall symroute applied, and explain on it says the same.
    const snap = node.symroute(["snapshot"]);
    assert.equal(snap.code, 0, snap.stderr);
    const file = join(dir, "node.json");
    writeFileSync(file, snap.stdout);
    const doc = JSON.parse(snap.stdout) as {
      node: { firewall: { backend: string; ruleKeys: string[] }[] };
      firewallSpec?: { entries: { pools: string[] }[] };
    };
    assert.ok(
      doc.node.firewall.some((f) => f.backend === "nftables" && f.ruleKeys.length > 0),
      snap.stdout,
    );
    assert.deepEqual(
      doc.firewallSpec?.entries.map((e) => e.pools),
      [["1.2.3.0/24"]],
    );
    const offline = node.exec([process.execPath, CLI, "explain", "--state", file, ...ask]);
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stdout, /^note: 1\.2\.3\.4 is in 1\.2\.3\.0\/24/m);

    // Before: `"firewall": []` whenever symroute's state was not where snapshot looked.
    const elsewhere = join(dir, "other-state");
    const bare = node.exec([process.execPath, CLI, "snapshot", "--state-dir", elsewhere]);
    assert.equal(bare.code, 0, bare.stderr);
    const bareDoc = JSON.parse(bare.stdout) as {
      node: { firewall: { backend: string; ruleKeys: string[] }[] };
    };
    assert.ok(
      bareDoc.node.firewall.some((f) => f.backend === "nftables" && f.ruleKeys.length > 0),
      JSON.stringify(bareDoc.node.firewall),
    );
  },
);
