// Reading symroute's nft tables must never mistake a listing that failed for "nothing of ours":
// the apply would plan from an empty firewall and a delete would leave the table behind. Only an
// absent table (nft 1.0.6's answer, measured in a scratch namespace) and an absent nft mean that.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createLinuxKernel } from "../../src/adapters/kernel.ts";
import type { ToolResult, ToolRunner } from "../../src/adapters/exec.ts";
import { SymrouteError, isSymrouteError } from "../../src/model/errors.ts";

const ok = (stdout: string): ToolResult => ({ code: 0, stdout, stderr: "" });
const failed = (stderr: string): ToolResult => ({ code: 1, stdout: "", stderr });
const noTable = (family: string): ToolResult =>
  failed(`Error: No such file or directory\nlist table ${family} symroute\n                ^^^^^^^^\n`);

const OURS = ok(
  'table inet symroute {\n\tchain pre {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tiifname "ext0" ct state new ct mark set ct mark or 0x00000001 comment "n1 mark"\n\t}\n}\n',
);

/** A runner with nft's answers for `table inet symroute`, `table arp symroute` and `table netdev symroute`. */
function runner(
  inet: ToolResult,
  arp: ToolResult = noTable("arp"),
  netdev: ToolResult = noTable("netdev"),
): ToolRunner {
  return async (tool, args) => {
    if (tool !== "nft") throw new Error(`unexpected tool ${tool} ${args.join(" ")}`);
    return args.includes("arp") ? arp : args.includes("netdev") ? netdev : inet;
  };
}

const GUARDS = ok(
  'table netdev symroute {\n\tchain guard_ext0 {\n\t\ttype filter hook ingress device "ext0" priority -500; policy accept;\n\t\tmeta protocol ip fib saddr . iif oif missing drop comment "ext0 v4 strict source check #1"\n\t}\n}\n',
);

const read = (run: ToolRunner) => createLinuxKernel({ run }).readFirewall(["nftables"]);

test("a table of ours is read; an absent one is nothing of ours", async () => {
  const [owned] = await read(runner(OURS));
  assert.deepEqual(owned?.ruleKeys, ["n1 mark"]);
  const [none] = await read(runner(noTable("inet")));
  assert.deepEqual(none?.ruleKeys, []);
  // The guards' netdev table is read with it, its hook line content without a key.
  const [guarded] = await read(runner(OURS, noTable("arp"), GUARDS));
  assert.deepEqual(guarded?.ruleKeys, ["n1 mark", "ext0 v4 strict source check #1"]);
  assert.ok(
    guarded?.contents?.includes(
      'guard_ext0: type filter hook ingress device "ext0" priority -500; policy accept;',
    ),
    JSON.stringify(guarded?.contents),
  );
});

test("no nft installed: nothing of ours can be in its tables", async () => {
  const missing: ToolRunner = async () => {
    throw new SymrouteError("dependency", 'required tool "nft" is not installed');
  };
  assert.deepEqual(await read(missing), []);
});

test("nft failing for a reason it does not explain is an error naming the command and the next step", async () => {
  const stderr = "netlink: Error: cache initialization failed: Invalid argument";
  const cases = [
    { table: "inet", run: runner(failed(`${stderr}\n`)) },
    { table: "arp", run: runner(OURS, failed(`${stderr}\n`)) },
    { table: "netdev", run: runner(OURS, noTable("arp"), failed(`${stderr}\n`)) },
  ];
  for (const { table, run } of cases) {
    await assert.rejects(read(run), (error: unknown) => {
      assert.ok(isSymrouteError(error));
      assert.equal(error.kind, "kernel");
      assert.match(error.message, new RegExp(`^nft -t list table ${table} symroute failed \\(exit 1\\)`));
      assert.deepEqual(error.details, [stderr]);
      assert.match(error.hint ?? "", new RegExp(`run \`nft -t list table ${table} symroute\``));
      return true;
    });
  }
});

test("nft refused for lack of privilege: a permission error", async () => {
  await assert.rejects(read(runner(failed("Error: Operation not permitted\n"))), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.equal(error.kind, "permission");
    return true;
  });
});
