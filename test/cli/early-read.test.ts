// The early reads of a one-shot command: which commands start them, and how their results are used.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { RunOptions, ToolResult } from "../../src/adapters/exec.ts";
import { isSymrouteError } from "../../src/model/errors.ts";
import { answerFromEarly, commandKey, earlyReadFor, type EarlyCommand } from "../../src/cli/early-read.ts";
import { NFT_TABLE } from "../../src/render/firewall.ts";
import { NFT_READ_ARGS } from "../../src/adapters/node-reads.ts";

test("plan reads early without the lock; apply and delete take it first; --dry-run and help do not", () => {
  assert.deepEqual(earlyReadFor("plan", ["-c", "x.yaml"]), { lock: false });
  assert.deepEqual(earlyReadFor("apply", ["-c", "x.yaml"]), { lock: true });
  assert.deepEqual(earlyReadFor("delete", []), { lock: true });
  assert.deepEqual(earlyReadFor("apply", ["-c", "x.yaml", "--dry-run"]), { lock: false });
  assert.equal(earlyReadFor("apply", ["--help"]), undefined);
  assert.equal(earlyReadFor("plan", ["-h"]), undefined);
  for (const other of ["doctor", "explain", "agent", "lab", "--version", undefined])
    assert.equal(earlyReadFor(other, ["-c", "x.yaml"]), undefined, String(other));
});

test("an early result answers the same command once; anything else runs as usual", async () => {
  const ran: string[] = [];
  const fallback = async (file: string, args: readonly string[], options: RunOptions = {}) => {
    ran.push(`${commandKey(file, args)} ${options.input ?? ""}`);
    return { code: 0, stdout: "fresh", stderr: "" };
  };
  const early = new Map<string, EarlyCommand>([
    [
      commandKey("ip", ["-4", "x"]),
      { input: "link show\n", result: Promise.resolve({ code: 0, stdout: "early", stderr: "" }) },
    ],
  ]);
  const run = answerFromEarly(early, fallback);
  // Same tool and arguments, another input: another command.
  assert.equal((await run("ip", ["-4", "x"], { input: "rule show\n" })).stdout, "fresh");
  assert.equal((await run("ip", ["-4", "x"], { input: "link show\n" })).stdout, "early");
  // Verification reads the node afresh: the same command again is not answered from the past.
  assert.equal((await run("ip", ["-4", "x"], { input: "link show\n" })).stdout, "fresh");
  assert.equal(ran.length, 2);
});

test("an early failure fails the caller as the tool would, unless the caller allows failure", async () => {
  const failed = { code: 1, stdout: "", stderr: "Error: Could not process rule: Operation not permitted" };
  const fallback = async () => ({ code: 0, stdout: "", stderr: "" });
  const make = () =>
    answerFromEarly(
      new Map([[commandKey("nft", NFT_READ_ARGS), { input: "", result: Promise.resolve(failed) }]]),
      fallback,
    );
  assert.deepEqual(await make()("nft", NFT_READ_ARGS, { allowFailure: true }), failed);
  await assert.rejects(make()("nft", NFT_READ_ARGS), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.equal(error.kind, "permission");
    return true;
  });
});

test("the early nft read lists symroute's own table", () => {
  assert.deepEqual(NFT_READ_ARGS, ["-t", "list", "table", "inet", NFT_TABLE]);
});
