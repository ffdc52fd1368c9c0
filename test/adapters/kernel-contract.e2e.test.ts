// The contract suite against the real kernel: this file re-runs itself inside a fresh network
// namespace (sysctls and nft state belong to the namespace of the process that touches them).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createLinuxKernel } from "../../src/adapters/kernel.ts";
import { kernelContract } from "../support/kernel-contract.ts";
import { kernelFailureContract, NFT_CASES } from "../support/kernel-contract-failures.ts";
import { articleNode, FakeKernel } from "../support/fake-kernel.ts";
import { BatchError } from "../../src/engine/ports.ts";
import { createNode, e2eUnavailable, run } from "../support/netns.ts";

const INSIDE = process.env["SYMROUTE_CONTRACT_INSIDE"];

if (INSIDE !== undefined) {
  // Each test starts from the pristine node: flush what the previous one added.
  const makeKernel = async () => {
    run(["ip", "route", "flush", "table", "20000"]);
    run(["ip", "route", "flush", "table", "20001"]);
    run(["ip", "-6", "route", "flush", "table", "20000"]);
    for (const priority of ["1000", "1001", "1002", "1003"]) {
      run(["ip", "rule", "del", "priority", priority]);
      run(["ip", "-6", "rule", "del", "priority", priority]);
    }
    run(["nft", "delete", "table", "inet", "symroute"]);
    run(["nft", "delete", "table", "arp", "symroute"]);
    run(["nft", "delete", "table", "netdev", "symroute"]);
    run(["sysctl", "-qw", "net.ipv4.conf.ext0.rp_filter=0"]);
    return createLinuxKernel();
  };
  kernelContract("linux kernel", makeKernel);
  kernelFailureContract("linux kernel", makeKernel);

  // The fake's verdict on each nft script is nft's own (`nft -c` checks without applying).
  test("the fake refuses the nft scripts nft -c refuses, at the same line, and takes the others", async () => {
    for (const c of NFT_CASES) {
      const checked = run(["nft", "-c", "-f", "-"], { input: c.script });
      const nftLine = checked.code === 0 ? undefined : Number(/:(\d+):\d+/.exec(checked.stderr)?.[1]);
      const fake = new FakeKernel(articleNode());
      let fakeLine: number | undefined;
      try {
        await fake.runNft(c.script);
      } catch (error) {
        assert.ok(error instanceof BatchError, String(error));
        fakeLine = error.failedLine;
      }
      assert.equal(fakeLine, nftLine, `${c.name}: fake ${fakeLine}, nft -c ${nftLine}: ${checked.stderr}`);
      assert.equal(nftLine, c.refusedAt, `${c.name}: the case's line is nft's`);
    }
  });
} else {
  const skip = e2eUnavailable();
  test("the kernel contract holds for the real kernel in a network namespace", { skip }, (t) => {
    const node = createNode(t);
    const r = node.exec([
      "env",
      "-u",
      "NODE_TEST_CONTEXT",
      "SYMROUTE_CONTRACT_INSIDE=1",
      process.execPath,
      "--import",
      "tsx",
      "--test",
      "--test-reporter=spec",
      import.meta.filename,
    ]);
    t.diagnostic(
      r.stdout
        .split("\n")
        .filter((l) => /^[✔✖]/.test(l))
        .join("\n"),
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The nested runner must really have run the whole suite.
    assert.match(r.stdout, /ℹ pass 24\n/, r.stdout);
  });
}
