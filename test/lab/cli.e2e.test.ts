// End-to-end: `symroute lab up` leaves a topology running whose servers answer, and
// `symroute lab down --prefix` removes exactly that run (namespaces, probes, run directory); with
// two labs up, a plain `lab down` removes neither.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { runTool } from "../../src/adapters/exec.ts";
import { listLabNamespaces } from "../../src/lab/topology.ts";
import { labUnavailable } from "../support/netns.ts";

// Not root: skipped; a tool the lab needs that is missing fails the file, naming it.
const missing = await labUnavailable();

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const symroute = (...args: string[]) =>
  runTool(process.execPath, ["--import", import.meta.resolve("tsx"), MAIN, ...args], { allowFailure: true });

describe("symroute lab up / lab down", () => {
  it(
    "builds a case that keeps serving, and removes exactly that run",
    { skip: missing, timeout: 60_000 },
    async (t) => {
      const up = await symroute("lab", "up", "--case", "1", "--ipv4-only");
      const prefix = /lab down --prefix (srlab-\S+)/.exec(up.stdout)?.[1];
      // Whatever happens below, this run's namespaces go.
      t.after(async () => {
        if (prefix !== undefined) await symroute("lab", "down", "--prefix", prefix);
      });
      assert.equal(up.code, 0, up.stderr);
      assert.ok(prefix !== undefined, `lab up names its prefix:\n${up.stdout}`);
      const config = /symroute's configuration: (\S+)/.exec(up.stdout)?.[1];
      assert.ok(config !== undefined && existsSync(config), "lab up writes symroute's configuration");

      const ours = (await listLabNamespaces()).filter((n) => n.startsWith(prefix));
      assert.deepEqual(
        ours.sort(),
        ["client", "node", "pod", "podc", "router"].map((h) => `${prefix}${h}`),
      );

      // The probes outlived `lab up`: the client reaches the node's management address, in bash
      // alone (no nc/curl needed), through the node's echo server on :8081.
      const echo = await runTool(
        "ip",
        [
          "netns",
          "exec",
          `${prefix}client`,
          "bash",
          "-c",
          'exec 3<>/dev/tcp/192.168.1.10/8081 && printf hello >&3 && read -t 3 -n 5 reply <&3 && echo "$reply"',
        ],
        { allowFailure: true },
      );
      assert.equal(echo.stdout.trim(), "hello", `echo through the lab: ${echo.stderr}`);

      const down = await symroute("lab", "down", "--prefix", prefix);
      assert.equal(down.code, 0, down.stderr);
      assert.deepEqual(
        (await listLabNamespaces()).filter((n) => n.startsWith(prefix)),
        [],
      );
      assert.ok(!existsSync(config), "lab down removes the run directory");
    },
  );

  it(
    "with two labs up, plain lab down removes neither, and --prefix removes one: the other keeps serving",
    { skip: missing, timeout: 120_000 },
    async (t) => {
      const prefixes: string[] = [];
      t.after(async () => {
        for (const p of prefixes) await symroute("lab", "down", "--prefix", p);
      });
      for (let i = 0; i < 2; i++) {
        const up = await symroute("lab", "up", "--case", "1", "--ipv4-only");
        const prefix = /lab down --prefix (srlab-\S+)/.exec(up.stdout)?.[1];
        if (prefix !== undefined) prefixes.push(prefix);
        assert.equal(up.code, 0, up.stderr);
        assert.ok(prefix !== undefined, `lab up names its prefix:\n${up.stdout}`);
      }
      const [first, second] = prefixes as [string, string];
      assert.notEqual(first, second);
      const hostsOf = async (prefix: string) =>
        (await listLabNamespaces()).filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
      const HOSTS = ["client", "node", "pod", "podc", "router"];

      // Before, this removed every lab namespace on the machine: both labs (and any test's).
      const plain = await symroute("lab", "down");
      assert.equal(plain.code, 1, plain.stdout + plain.stderr);
      assert.match(plain.stderr, /lab runs are up; lab down removes one only when it is the only one/);
      for (const p of prefixes) {
        assert.ok(plain.stderr.includes(p), `the refusal names ${p}:\n${plain.stderr}`);
        assert.deepEqual((await hostsOf(p)).sort(), HOSTS, `${p} is still there`);
      }
      assert.match(plain.stderr, /--all removes every lab namespace/);

      const one = await symroute("lab", "down", "--prefix", first);
      assert.equal(one.code, 0, one.stderr);
      assert.deepEqual(await hostsOf(first), []);
      assert.deepEqual((await hostsOf(second)).sort(), HOSTS);
      const echo = await runTool(
        "ip",
        [
          "netns",
          "exec",
          `${second}client`,
          "bash",
          "-c",
          'exec 3<>/dev/tcp/192.168.1.10/8081 && printf hello >&3 && read -t 3 -n 5 reply <&3 && echo "$reply"',
        ],
        { allowFailure: true },
      );
      assert.equal(echo.stdout.trim(), "hello", `the second lab still serves: ${echo.stderr}`);
    },
  );

  it("--prefix and --all together are refused", { skip: missing }, async () => {
    const down = await symroute("lab", "down", "--all", "--prefix", "srlab-1-1-");
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot be used with/);
  });

  it("refuses a prefix that is not the lab's", { skip: missing }, async () => {
    const down = await symroute("lab", "down", "--prefix", "sr-other-");
    assert.equal(down.code, 1);
    assert.match(down.stderr, /--prefix must start with "srlab-"/);
  });
});
