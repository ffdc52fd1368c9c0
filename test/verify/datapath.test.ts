// Datapaths that bypass netfilter (issue 13 item 6), detected on node dumps: each fixture folder
// holds what the node's tools print (`ip -j -d link`, `tc -j filter show dev IF ingress`,
// `iptables-save -t nat`) and the names pinned in /sys/fs/bpf/tc/globals. The real kernel adapter
// reads them through a fake tool runner, and the pure detection decides; then the engine refuses
// plan and apply with `not-supported` and still deletes.

import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  mkdirSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createLinuxKernel } from "../../src/adapters/kernel.ts";
import type { ToolRunner } from "../../src/adapters/exec.ts";
import { parseConfigText } from "../../src/config/index.ts";
import { createEngine } from "../../src/engine/engine.ts";
import { isSymrouteError } from "../../src/model/errors.ts";
import { detectBypassingDatapaths } from "../../src/verify/datapath.ts";
import { articleNode, FakeKernel } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";

const FIXTURES = join(import.meta.dirname, "fixtures", "datapath");

interface Case {
  readonly about: string;
  readonly interfaces: readonly string[];
  readonly expected: readonly string[];
}

/** A tool runner that answers from the fixture folder, and records what ran. */
function fixtureRunner(dir: string, ran: string[]): ToolRunner {
  const file = (name: string): string | undefined =>
    existsSync(join(dir, name)) ? readFileSync(join(dir, name), "utf8") : undefined;
  return async (tool, args, options) => {
    ran.push(`${tool} ${args.join(" ")}`);
    const ok = (stdout: string) => ({ code: 0, stdout, stderr: "" });
    if (tool === "ip") {
      const commands = (options?.input ?? "").split("\n").filter((l) => l !== "");
      const links = JSON.stringify(JSON.parse(file("ip-link.json") ?? "[]"));
      return ok(commands.map((c) => (c === "link show" ? links : "[]")).join("\n") + "\n");
    }
    if (tool === "tc") {
      const dev = args[args.indexOf("dev") + 1] ?? "";
      const text = file(`tc-ingress-${dev}.json`);
      return text === undefined ? { code: 1, stdout: "", stderr: `Cannot find device "${dev}"\n` } : ok(text);
    }
    if (tool === "iptables-save") return ok(file("iptables-save-nat.txt") ?? "");
    if (tool === "nft") return ok(file("nft-list-chains.txt") ?? "");
    throw new Error(`unexpected tool ${tool}`);
  };
}

/** A pinned-maps directory holding the fixture's names (empty files stand in for the maps). */
function bpfDir(dir: string): string {
  const root = mkdtempSync(join(tmpdir(), "symroute-bpf-"));
  const globals = join(root, "globals");
  mkdirSync(globals);
  for (const name of readFileSync(join(dir, "bpf-globals.txt"), "utf8").split("\n"))
    if (name !== "") writeFileSync(join(globals, name), "");
  return root;
}

for (const name of readdirSync(FIXTURES).sort()) {
  const dir = join(FIXTURES, name);
  const c = JSON.parse(readFileSync(join(dir, "case.json"), "utf8")) as Case;
  test(`datapath detection on a recorded node: ${name} (${c.about})`, async () => {
    const ran: string[] = [];
    const root = bpfDir(dir);
    try {
      const kernel = createLinuxKernel({
        run: fixtureRunner(dir, ran),
        procSys: join(root, "no-sys"),
        bpfGlobals: join(root, "globals"),
      });
      const node = await kernel.readNode({
        sysctls: [],
        firewalls: [],
        datapath: { interfaces: c.interfaces },
      });
      assert.ok(node.datapath !== undefined);
      const found = detectBypassingDatapaths({
        links: node.links,
        datapath: node.datapath,
        interfaces: c.interfaces,
      });
      assert.deepEqual(
        found.map((f) => f.name),
        c.expected,
        JSON.stringify(found, null, 2),
      );
      for (const f of found) assert.ok(f.evidence.length > 0 && f.remedy !== "");
      // Cheap on an ordinary node: no tc and no kube-proxy look-up unless Cilium or Calico shows.
      const suspect =
        node.datapath.pinnedMaps.length > 0 || node.links.some((l) => /^cilium_|\.cali$/.test(l.ifname));
      assert.equal(
        ran.some((r) => r.startsWith("tc ") || r.startsWith("iptables-save")),
        suspect,
        ran.join("\n"),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test("the engine refuses plan and apply on a node with Cilium's kube-proxy replacement, and still deletes", async () => {
  const cfg = parseConfigText(`
networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`);
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.issues));
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  const engine = createEngine({ kernel, store });
  // Applied before Cilium took over services: the objects are on the node.
  await engine.apply(cfg.config);
  const owned = () => kernel.state.rules.filter((r) => r.priority >= 1000 && r.priority <= 1999).length;
  assert.ok(owned() > 0);
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "cilium_host", ifindex: 40, up: true, kind: "veth" }],
    datapath: {
      pinnedMaps: ["cilium_lb4_services_v2"],
      programs: [{ ifname: "ext0", hook: "tc ingress", name: "cil_from_netdev" }],
      kubeProxy: { iptablesChains: true, nftablesTable: false },
    },
  };
  for (const run of [() => engine.plan(cfg.config), () => engine.apply(cfg.config)]) {
    await assert.rejects(run(), (error: unknown) => {
      assert.ok(isSymrouteError(error));
      assert.equal(error.kind, "not-supported");
      assert.match(error.message, /Cilium kube-proxy replacement/);
      assert.ok(
        error.details.some((d) => d.includes("cil_from_netdev on tc ingress of ext0")),
        error.details.join("\n"),
      );
      assert.match(error.hint ?? "", /kubeProxyReplacement/);
      return true;
    });
  }
  assert.ok(owned() > 0, "a refused apply changes nothing");
  const removed = await engine.remove(cfg.config);
  assert.equal(removed.applied, true);
  assert.equal(owned(), 0);
});
