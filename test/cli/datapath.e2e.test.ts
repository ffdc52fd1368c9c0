// The real CLI on a node where Cilium's kube-proxy replacement stands in (issue 13 item 6): its links
// in the namespace, its service maps' names in /sys/fs/bpf/tc/globals (a tmpfs in a private mount
// namespace: this machine runs no Cilium), no kube-proxy. plan and apply stop with `not-supported`
// and change nothing; delete still removes what an earlier apply left, back to the starting dump.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, createNode, e2eUnavailable, run, type Netns } from "../support/netns.ts";
import { missing } from "../support/skip.ts";

const dir = mkdtempSync(join(tmpdir(), "symroute-datapath-"));
chmodSync(dir, 0o755);
const CONFIG = join(dir, "public.yaml");
writeFileSync(
  CONFIG,
  `networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
);
chmodSync(CONFIG, 0o644);

// Mounts a tmpfs on /sys/fs/bpf in the process's own mount namespace (`ip netns exec` gives each
// command one), names Cilium's maps there, then runs the CLI with the arguments that follow.
const WITH_CILIUM_MAPS =
  'mount -t tmpfs symroute-test /sys/fs/bpf && mkdir -p /sys/fs/bpf/tc/globals && cd /sys/fs/bpf/tc/globals && touch cilium_lb4_services_v2 cilium_lb4_backends_v3 cilium_ct4_global && exec "$@"';

function mountNamespaces(): string | undefined {
  const r = run(["unshare", "-m", "sh", "-c", "mount -t tmpfs x /mnt"]);
  return r.code === 0 ? undefined : missing("mount namespaces", r.stderr.trim());
}

const skip = e2eUnavailable() ?? mountNamespaces();

function withCilium(node: Netns, args: readonly string[]) {
  return node.exec([
    "sh",
    "-c",
    WITH_CILIUM_MAPS,
    "sh",
    process.execPath,
    CLI,
    ...args,
    "--state-dir",
    node.stateDir,
    "-o",
    "json",
  ]);
}

test(
  "plan and apply refuse Cilium's kube-proxy replacement with not-supported; delete still works",
  { skip },
  (t) => {
    const node = createNode(t);
    // The veths' carrier comes up on its own time: the starting dump waits for it (bounded reads).
    const up = () =>
      (JSON.parse(node.exec(["ip", "-j", "link", "show"]).stdout) as { ifname: string; operstate: string }[])
        .filter((l) => l.ifname === "eth0" || l.ifname === "ext0")
        .every((l) => l.operstate === "UP");
    for (let i = 0; i < 2000 && !up(); i++);
    assert.ok(up(), "eth0 and ext0 are up");
    const start = node.dump();
    // Applied before Cilium took over the node's services.
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr);
    const r = node.exec(["ip", "link", "add", "cilium_host", "type", "veth", "peer", "name", "cilium_net"]);
    assert.equal(r.code, 0, r.stderr);
    const before = node.dump();

    for (const command of ["plan", "apply"]) {
      const refused = withCilium(node, [command, "-c", CONFIG]);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      const error = (
        JSON.parse(refused.stdout) as {
          error: { kind: string; message: string; details: string[]; hint?: string };
        }
      ).error;
      assert.equal(error.kind, "not-supported");
      assert.match(error.message, /^Cilium kube-proxy replacement found on this node/);
      assert.ok(
        error.details.some((d) => /service maps cilium_lb4_services_v2 pinned/.test(d)),
        error.details.join("\n"),
      );
      assert.ok(
        error.details.some((d) => /links cilium_net, cilium_host|links cilium_host, cilium_net/.test(d)),
      );
      assert.match(error.hint ?? "", /kubeProxyReplacement: false/);
      assert.equal(node.dump(), before, `${command} changed nothing`);
    }

    // Without the maps (the same links: Cilium as the CNI only) the plan goes through.
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);

    const deleted = withCilium(node, ["delete"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(node.exec(["ip", "link", "del", "cilium_host"]).code, 0);
    assert.equal(node.dump(), start);
  },
);
