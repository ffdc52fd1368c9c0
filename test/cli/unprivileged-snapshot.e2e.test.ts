// A snapshot taken without privileges cannot read iptables or nft: it must say so (in its
// kube-proxy sources and on stderr) rather than record kube-proxy's rules as absent, which a
// later `explain --state` would take as "kube-proxy DNATs nothing".

import { test } from "node:test";
import assert from "node:assert/strict";
import { asNobody, createNode, e2eUnavailable, nobodysStateDir } from "../support/netns.ts";

const skip = e2eUnavailable();

interface SnapshotSources {
  node: { kubeProxyServices: { sources: string[] } };
}

test(
  "snapshot as nobody: kube-proxy's rules are 'not readable', not 'absent', and stderr warns",
  { skip },
  (t) => {
    const node = createNode(t);
    const argv = ["snapshot", "--state-dir", nobodysStateDir(t)];
    const byNobody = asNobody(node, argv);
    assert.equal(byNobody.code, 0, byNobody.stderr);
    const sources = (JSON.parse(byNobody.stdout) as SnapshotSources).node.kubeProxyServices.sources;
    assert.ok(sources.length > 0);
    for (const source of sources)
      assert.match(source, /: not readable \(\S+: permission denied; run as root\)$/);
    assert.match(byNobody.stderr, /^warning: this snapshot could not read iptables nat: not readable/);

    // As root the same node reads them: nothing is absent for lack of privileges, and no warning.
    const asRoot = node.symroute(argv);
    assert.equal(asRoot.code, 0, asRoot.stderr);
    assert.equal(asRoot.stderr, "");
    const rootSources = (JSON.parse(asRoot.stdout) as SnapshotSources).node.kubeProxyServices.sources;
    assert.ok(
      rootSources.every((s) => !s.includes("not readable")),
      rootSources.join("; "),
    );
  },
);
