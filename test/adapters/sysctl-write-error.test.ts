// A sysctl symroute cannot write is named with its file and the error in words (not "ENOENT"
// alone), and the next step when there is one.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLinuxKernel } from "../../src/adapters/kernel.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

test("a sysctl of an interface that is gone: the file, the errno in words, and what to check", async (t) => {
  const procSys = mkdtempSync(join(tmpdir(), "symroute-proc-sys-"));
  t.after(() => rmSync(procSys, { recursive: true, force: true }));
  mkdirSync(join(procSys, "net/ipv4/conf"), { recursive: true });
  const kernel = createLinuxKernel({ procSys });
  await assert.rejects(kernel.writeSysctls([["net/ipv4/conf/ext9/rp_filter", "1"]]), (error) => {
    assert.ok(isSymrouteError(error), String(error));
    assert.equal(error.kind, "kernel");
    assert.equal(
      error.message,
      `could not set net.ipv4.conf.ext9.rp_filter to 1 (${procSys}/net/ipv4/conf/ext9/rp_filter): no such file or directory (ENOENT)`,
    );
    assert.match(error.hint ?? "", /the interface it belongs to is gone/);
    return true;
  });
});
