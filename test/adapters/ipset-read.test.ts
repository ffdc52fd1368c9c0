// Reading symroute's ipsets (the iptables front end) must never mistake an `ipset save` that failed
// for "no sets of ours": the next apply would plan to create sets that exist, and a delete would
// leave them behind. Only a missing ipset, a kernel without ip_set, or a save that lists no set of
// symroute's mean that. ipset 7.17's answers: no sets, exit 0 and nothing printed (measured in a
// scratch namespace); the kernel-side errors as ipset prints them ("Kernel error received: ...").

import { test } from "node:test";
import assert from "node:assert/strict";
import { createLinuxKernel } from "../../src/adapters/kernel.ts";
import type { ToolResult, ToolRunner } from "../../src/adapters/exec.ts";
import { SymrouteError, isSymrouteError } from "../../src/model/errors.ts";

const EMPTY_MANGLE = "*mangle\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
const ok = (stdout: string): ToolResult => ({ code: 0, stdout, stderr: "" });
const failed = (stderr: string): ToolResult => ({ code: 1, stdout: "", stderr });
const SAVED = ok(
  [
    "create symroute-c4-0123abcd hash:net,iface family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1234",
    "add symroute-c4-0123abcd 203.0.113.0/24,ext0",
    "create other hash:ip family inet hashsize 1024 maxelem 65536",
    // Under symroute's prefix, but not a name symroute makes: someone else's.
    "create symroute-backup hash:net family inet hashsize 1024 maxelem 65536",
    "add symroute-backup 198.51.100.0/24",
    "",
  ].join("\n"),
);

/** A runner whose `ipset save` answers `ipset`; the iptables listings are empty, nft has no ARP table. */
function runner(ipset: ToolResult | "not installed"): ToolRunner {
  return async (tool, args) => {
    if (tool === "iptables-save" || tool === "ip6tables-save") return ok(EMPTY_MANGLE);
    if (tool === "nft") return failed("Error: No such file or directory\nlist table arp symroute\n");
    if (tool === "ipset" && args.join(" ") === "save") {
      if (ipset === "not installed")
        throw new SymrouteError("dependency", 'required tool "ipset" is not installed');
      return ipset;
    }
    throw new Error(`unexpected tool ${tool} ${args.join(" ")}`);
  };
}

const read = async (run: ToolRunner) => {
  const [owned] = await createLinuxKernel({ run }).readFirewall(["iptables"]);
  return owned;
};

test("symroute's sets are read; other sets are not its own", async () => {
  const owned = await read(runner(SAVED));
  assert.deepEqual(owned?.ruleKeys, ["ipset:symroute-c4-0123abcd"]);
});

test("no sets, no ipset, or a kernel without ip_set: nothing of ours", async () => {
  const cases = [
    ok(""),
    "not installed" as const,
    // nfnetlink without the ip_set subsystem answers EINVAL to ipset's first (protocol) message.
    failed("ipset v7.17: Kernel error received: Invalid argument\n"),
    // No netfilter netlink socket at all.
    failed("ipset v7.17: Cannot open session to kernel.\n"),
  ];
  for (const answer of cases) {
    const owned = await read(runner(answer));
    assert.deepEqual(owned?.ruleKeys, [], JSON.stringify(answer));
  }
});

test("ipset save failing for another reason is an error naming the command and the next step", async () => {
  const stderr = "ipset v7.17: Kernel error received: Cannot allocate memory";
  await assert.rejects(read(runner(failed(`${stderr}\n`))), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.equal(error.kind, "kernel");
    assert.match(error.message, /^ipset save failed \(exit 1\): symroute cannot tell which of its sets/);
    assert.deepEqual(error.details, [stderr]);
    assert.match(error.hint ?? "", /run `ipset save`/);
    return true;
  });
});

test("ipset save refused for lack of privilege: a permission error", async () => {
  const stderr = "ipset v7.17: Kernel error received: Operation not permitted\n";
  await assert.rejects(read(runner(failed(stderr))), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.equal(error.kind, "permission");
    return true;
  });
});
