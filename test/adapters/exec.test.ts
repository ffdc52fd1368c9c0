// runTool: argument arrays, stdin for input, stdout and stderr through pipes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { runTool } from "../../src/adapters/exec.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

test("a listing larger than a pipe's buffer arrives whole", async () => {
  const result = await runTool("head", ["-c", "1000000", "/dev/zero"]);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.length, 1_000_000);
});

test("an input larger than a pipe's buffer reaches the tool whole", async () => {
  const lines = Array.from(
    { length: 40_000 },
    (_, i) => `route add 10.${(i >> 8) & 255}.${i & 255}.0/24 dev eth0`,
  );
  const input = `${lines.join("\n")}\n`;
  assert.ok(input.length > 1_000_000);
  const result = await runTool("wc", ["-l"], { input });
  assert.equal(result.stdout.trim(), "40000");
  assert.equal((await runTool("cat", [], { input })).stdout, input, "byte for byte, from its first line");
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
