// A snapshot taken without privileges cannot read iptables or nft: it must say so (in its
// kube-proxy sources and on stderr) rather than record kube-proxy's rules as absent, which a
// later `explain --state` would take as "kube-proxy DNATs nothing".

import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, e2eUnavailable, publicCli } from "../support/netns.ts";

const skip = e2eUnavailable();

interface SnapshotSources {
  node: { kubeProxyServices: { sources: string[] } };
}

test(
  "snapshot as nobody: kube-proxy's rules are 'not readable', not 'absent', and stderr warns",
  { skip },
  (t) => {
    const node = createNode(t);
    const stateDir = mkdtempSync(join(tmpdir(), "symroute-nobody-"));
    chownSync(stateDir, 65534, 65534);
    t.after(() => rmSync(stateDir, { recursive: true, force: true }));
    const argv = ["snapshot", "--state-dir", stateDir];
    const asNobody = node.exec([
      "setpriv",
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "--inh-caps=-all",
      process.execPath,
      publicCli(),
      ...argv,
    ]);
    assert.equal(asNobody.code, 0, asNobody.stderr);
    const sources = (JSON.parse(asNobody.stdout) as SnapshotSources).node.kubeProxyServices.sources;
    assert.ok(sources.length > 0);
    for (const source of sources)
      assert.match(source, /: not readable \(\S+: permission denied; run as root\)$/);
    assert.match(asNobody.stderr, /^warning: this snapshot could not read iptables nat: not readable/);

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
