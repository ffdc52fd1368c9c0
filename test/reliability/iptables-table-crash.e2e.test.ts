// A first `firewall: iptables` apply killed right after its iptables-restore (SIGKILL from the
// wrapper, the restore then run whole): iptables-nft has made `table ip mangle` with its base
// chains. The record written before the apply names the table as one it may make, so the next
// `delete` (or an apply, then a delete) leaves the node as it was, no empty table behind; a mangle
// table that was there before (kube-proxy's chain in it) stays, and of its built-in chains only
// those the restore made (named in the record too) go.
//
// And a delete killed after its payloads, just before its commit dropped the mangle table symroute
// made (`nft delete table`, killed by the wrapper before it ran): the next delete finds nothing of
// symroute's left, in sync, and must still drop that table before it removes the state file that
// names it; an apply in sync keeps that record, for the delete after it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createFaultTools } from "./support/fault-tools.ts";
import {
  assertSameDump,
  configDir,
  createNode,
  e2eUnavailable,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-ipt-crash-");
// IPv4 only: one iptables-restore, the wrapper's first payload call of that tool.
const config = writeConfigFile(
  dir,
  "iptables.yaml",
  `firewall: iptables
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
);

const mangleTable = (node: Netns): boolean => node.exec(["nft", "list", "table", "ip", "mangle"]).code === 0;

function savedState(node: Netns): {
  inProgress?: boolean;
  iptablesTablesCreating?: number[];
  iptablesTablesCreated?: number[];
  iptablesChainsCreating?: string[];
} {
  const [netns] = readdirSync(node.stateDir).filter((d) => d.startsWith("netns-"));
  assert.ok(netns !== undefined, `a state directory in ${node.stateDir}`);
  return JSON.parse(readFileSync(join(node.stateDir, netns, "state.json"), "utf8")) as ReturnType<
    typeof savedState
  >;
}

for (const [next, before] of [
  ["delete", "no mangle table"],
  ["apply, then delete", "no mangle table"],
  ["delete", "kube-proxy's mangle table"],
  ["delete", "kube-proxy's mangle table without built-in chains"],
] as const) {
  test(
    `first iptables apply killed after its restore, ${before}, then ${next}: the node is as before`,
    { skip },
    (t) => {
      const tools = createFaultTools();
      t.after(() => tools.remove());
      const node = createNode(t);
      if (before !== "no mangle table") {
        // With its base chains, or (as kube-proxy and kubelet leave it with iptables-nft) only its
        // own chain: the restore makes the missing base chains, recorded before it as ones it may make.
        const chainsToo = before === "kube-proxy's mangle table";
        for (const argv of [
          ["-N", "KUBE-KUBELET-CANARY"],
          ...(chainsToo
            ? [
                ["-A", "PREROUTING", "-j", "KUBE-KUBELET-CANARY"],
                ["-A", "OUTPUT", "-j", "KUBE-KUBELET-CANARY"],
              ]
            : []),
        ]) {
          const made = node.exec(["iptables", "-t", "mangle", ...argv]);
          assert.equal(made.code, 0, made.stderr);
        }
      }
      assert.equal(mangleTable(node), before !== "no mangle table");
      const start = node.dump();
      const killed = node.symroute(
        ["apply", "-c", config],
        tools.env({ kind: "crash", tool: "iptables-restore", call: 1, lines: "all" }),
      );
      assert.equal(killed.code, 137, `killed: ${killed.stdout}${killed.stderr}`);
      assert.ok(mangleTable(node), "the restore ran after the kill");
      const crashed = savedState(node);
      assert.equal(crashed.inProgress, true);
      if (next === "apply, then delete") {
        const applied = node.symroute(["apply", "-c", config]);
        assert.equal(applied.code, 0, applied.stdout + applied.stderr);
        assert.equal(node.symroute(["plan", "-c", config]).code, 0);
      }
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
      assert.equal(mangleTable(node), before !== "no mangle table");
      assertSameDump(start, node.dump(), `after the killed apply and ${next}`);
      // What let it: the record written before the apply named the table it may make.
      assert.deepEqual(crashed.iptablesTablesCreating, before === "no mangle table" ? [4] : undefined);
      assert.deepEqual(
        crashed.iptablesChainsCreating,
        before === "kube-proxy's mangle table" ? undefined : ["4:OUTPUT", "4:PREROUTING"],
      );
    },
  );
}

for (const next of ["delete", "apply, then delete"] as const) {
  test(
    `iptables delete killed before it dropped the mangle table it made, then ${next}: the node is as before`,
    { skip },
    (t) => {
      const tools = createFaultTools();
      t.after(() => tools.remove());
      const node = createNode(t);
      const start = node.dump();
      const applied = node.symroute(["apply", "-c", config]);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      assert.deepEqual(savedState(node).iptablesTablesCreated, [4]);
      const killed = node.symroute(
        ["delete"],
        tools.env({ kind: "crash", tool: "nft", call: 1, lines: 0, arg: "delete" }),
      );
      assert.equal(killed.code, 137, `killed: ${killed.stdout}${killed.stderr}`);
      assert.ok(mangleTable(node), "killed before the table was dropped");
      assert.deepEqual(savedState(node).iptablesTablesCreated, [4]);
      if (next === "apply, then delete") {
        const again = node.symroute(["apply", "-c", config]);
        assert.equal(again.code, 0, again.stdout + again.stderr);
        assert.equal(node.symroute(["plan", "-c", config]).code, 0);
      }
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
      assert.equal(mangleTable(node), false, "the table symroute made is dropped");
      assertSameDump(start, node.dump(), `after the killed delete and ${next}`);
    },
  );
}
