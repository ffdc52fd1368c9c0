// A state file edited by hand or cut short is refused with the field that is wrong and what to do,
// and nothing on the node changes. Before, the file was used as it parsed: an apply with a table
// given as text went ahead (exit 0), and delete writes each of previousSysctls' names under
// /proc/sys, "../" included.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  assertSameDump,
  createNode,
  e2eUnavailable,
  configDir,
  stateFileOf,
  writeConfigFile,
  PUBLIC_NETWORK,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-state-invalid-");
const CONFIG = writeConfigFile(dir, "public.yaml", PUBLIC_NETWORK);

test(
  "an invalid state file: apply and delete refuse, naming the field, and change nothing",
  { skip },
  (t) => {
    const node = createNode(t);
    const outside = mkdtempSync(join(tmpdir(), "symroute-outside-"));
    t.after(() => rmSync(outside, { recursive: true, force: true }));
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    const file = stateFileOf(node);
    const good = readFileSync(file, "utf8");
    const during = node.dump();

    const cases: readonly (readonly [string, string, RegExp])[] = [
      [
        "a table as text",
        good.replace(/"table": (\d+)/, '"table": "$1"'),
        /allocations\.public\.table: must be a table number from 1 to 4294967295; got "\d+"/,
      ],
      [
        "a sysctl name that climbs out of /proc/sys",
        good.replace('"net/ipv4/conf/all/rp_filter"', `"net/ipv4/conf/../../../../..${outside}/written"`),
        /previousSysctls\[.*\]: sysctl name .* is not one of symroute's/,
      ],
      ["a file cut short", good.slice(0, good.length / 2), /not JSON .*cut short/],
    ];
    for (const [what, text, expected] of cases) {
      writeFileSync(file, text);
      // --force passes over a missing state file, not an invalid one (delete --help, README).
      for (const args of [["apply", "-c", CONFIG], ["delete"], ["delete", "--force"]]) {
        const run = node.symroute([...args, "-o", "json"]);
        assert.equal(run.code, 1, `${what}, ${args[0]}: ${run.stdout}${run.stderr}`);
        const error = (JSON.parse(run.stdout) as { error: { kind: string; message: string; hint: string } })
          .error;
        assert.equal(error.kind, "invalid-argument");
        assert.match(error.message, expected, what);
        assert.match(error.hint, /nothing was changed/);
        // It sent the reader to `symroute plan` to count symroute's objects, which refuses the file too.
        assert.match(error.hint, /`symroute delete --dry-run --state-dir` an empty directory/);
        assert.equal(node.dump(), during, `${what}, ${args[0]}: the node is as it was`);
        assert.equal(readFileSync(file, "utf8"), text, `${what}, ${args[0]}: the file is as it was`);
        assert.ok(
          !existsSync(join(outside, "written")),
          `${what}, ${args[0]}: nothing written outside /proc/sys`,
        );
      }
    }
    // The file put back: delete puts the node back as it found it.
    writeFileSync(file, good);
    assert.equal(node.symroute(["delete"]).code, 0);
  },
);

test(
  "a state file symroute wrote on a node with a link whose name the config would refuse is read back",
  { skip },
  (t) => {
    // Lowering conf.all's rp_filter (ext0 has no IPv4 address), apply raises and records that of
    // every other link, "odd+1" too (the kernel allows '+'); the schema refused that name, so plan,
    // apply and delete all failed on the file apply had just written.
    const node = createNode(t);
    assert.equal(node.exec(["ip", "link", "add", "odd+1", "type", "veth", "peer", "name", "oddp"]).code, 0);
    const start = node.dump();
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.ok(
      "net/ipv4/conf/odd+1/rp_filter" in
        (JSON.parse(readFileSync(stateFileOf(node), "utf8")) as { previousSysctls: object }).previousSysctls,
      "apply recorded odd+1's rp_filter",
    );
    const planned = node.symroute(["plan", "-c", CONFIG]);
    assert.equal(planned.code, 0, planned.stdout + planned.stderr);
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
    assertSameDump(start, node.dump(), "after delete");
  },
);
