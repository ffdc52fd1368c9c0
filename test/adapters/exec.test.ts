// runTool: argument arrays, stdin for input, stdout through an unlinked file (never a full pipe).

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { runTool } from "../../src/adapters/exec.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

const leftovers = (): string[] =>
  existsSync("/dev/shm") ? readdirSync("/dev/shm").filter((n) => n.startsWith(".symroute-")) : [];

test("a listing larger than a pipe arrives whole, even when the event loop was busy meanwhile", async () => {
  const before = leftovers().length;
  const pending = runTool("head", ["-c", "1000000", "/dev/zero"]);
  // Keep the event loop busy, as compiling and planning do while the early reads run: with a
  // pipe the tool would stop at 64 KiB until the loop turned.
  let sum = 0;
  for (let i = 0; i < 5e7; i++) sum += i % 7;
  assert.ok(sum > 0);
  const result = await pending;
  assert.equal(result.code, 0);
  assert.equal(result.stdout.length, 1_000_000);
  assert.equal(leftovers().length, before, "the spill file is unlinked");
});

test("an input larger than a pipe reaches the tool whole, even when the event loop is busy", async () => {
  const before = leftovers().length;
  const lines = Array.from(
    { length: 40_000 },
    (_, i) => `route add 10.${(i >> 8) & 255}.${i & 255}.0/24 dev eth0`,
  );
  const input = `${lines.join("\n")}\n`;
  assert.ok(input.length > 1_000_000);
  const pending = runTool("wc", ["-l"], { input });
  let sum = 0;
  for (let i = 0; i < 5e7; i++) sum += i % 7;
  assert.ok(sum > 0);
  const result = await pending;
  assert.equal(result.stdout.trim(), "40000");
  assert.equal((await runTool("cat", [], { input })).stdout, input, "byte for byte, from its first line");
  assert.equal(leftovers().length, before, "the input file is unlinked");
});

test("input goes to stdin and stdout comes back; stderr and the exit status are kept", async () => {
  const echo = await runTool("cat", [], { input: "route show\nrule show\n" });
  assert.equal(echo.stdout, "route show\nrule show\n");
  const failed = await runTool("ls", ["/nonexistent-symroute-path"], { allowFailure: true });
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, /No such file or directory/);
  await assert.rejects(runTool("ls", ["/nonexistent-symroute-path"]), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.match(error.message, /^ls \/nonexistent-symroute-path failed \(exit \d+\)/);
    return true;
  });
});

test("a missing tool is a dependency error naming it", async () => {
  await assert.rejects(runTool("symroute-no-such-tool", []), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.equal(error.kind, "dependency");
    assert.match(error.message, /"symroute-no-such-tool" is not installed/);
    return true;
  });
});
