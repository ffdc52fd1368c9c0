// The state file's kept reads (keepReads, the agent's): the last state read is given again only
// while the file is the same file unchanged; any other writer's change is read.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStateFile } from "../../src/adapters/state-file.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import { savedStateSchema } from "../../src/config/state-schema.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

const state = (links: string[]): SavedState => ({
  version: 1,
  previousSysctls: { "net/ipv4/conf/all/rp_filter": "1" },
  allocations: { a: { table: 20000, mark: 1 } },
  createdLinks: links,
});

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "symroute-state-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("kept reads: the same state while the file is unchanged, the file's content after any change", async (t) => {
  const dir = scratch(t);
  const agent = createStateFile(dir, { keepReads: true });
  const other = createStateFile(dir);
  assert.equal(await agent.read(), undefined);

  await agent.write(state(["v1"]));
  const first = await agent.read();
  assert.deepEqual(first, state(["v1"]));
  assert.equal(await agent.read(), first, "unchanged file: the kept state");

  // Another writer (a `symroute apply` by hand) replaces the file.
  await other.write(state(["v2"]));
  assert.deepEqual((await agent.read())?.createdLinks, ["v2"]);

  // Changed in place, to the same length.
  const file = agent.location;
  const text = readFileSync(file, "utf8");
  writeFileSync(file, text.replace('"v2"', '"v3"'));
  assert.deepEqual((await agent.read())?.createdLinks, ["v3"]);

  await other.remove();
  assert.equal(await agent.read(), undefined);
  await agent.write(state(["v4"]));
  await agent.remove();
  assert.equal(await agent.read(), undefined);
});

test("without kept reads every read parses the file again", async (t) => {
  const dir = scratch(t);
  const cli = createStateFile(dir);
  await cli.write(state([]));
  const a = await cli.read();
  const b = await cli.read();
  assert.deepEqual(a, b);
  assert.notEqual(a, b);
});

test("an invalid state file is refused even right after a kept read", async (t) => {
  const dir = scratch(t);
  const agent = createStateFile(dir, { keepReads: true });
  await agent.write(state([]));
  await agent.read();
  writeFileSync(agent.location, "{ not json");
  await assert.rejects(agent.read(), /is not valid/);
});

test("a --state-dir that is a file is the user's path, named with what to do, not a kernel error", async (t) => {
  const dir = scratch(t);
  const file = join(dir, "not-a-directory");
  writeFileSync(file, "");
  for (const stateDir of [file, join(file, "below")]) {
    const store = createStateFile(stateDir);
    for (const attempt of [() => store.read(), () => store.write(state([]))]) {
      await assert.rejects(attempt(), (error: unknown) => {
        assert.ok(isSymrouteError(error), String(error));
        assert.equal(error.kind, "invalid-argument");
        assert.match(error.message, /ENOTDIR|EEXIST/);
        assert.match(error.message, /must be a directory/);
        assert.match(error.hint ?? "", /--state-dir/);
        return true;
      });
    }
  }
});

test("a state.json that is a directory is named as such, the errno in words, not 'EISDIR' alone nor the state directory blamed", async (t) => {
  const dir = scratch(t);
  const store = createStateFile(dir);
  await store.write(state([]));
  const file = store.location;
  rmSync(file);
  mkdirSync(file);
  for (const attempt of [() => store.read(), () => store.write(state([]))]) {
    await assert.rejects(attempt(), (error: unknown) => {
      assert.ok(isSymrouteError(error), String(error));
      assert.equal(error.kind, "invalid-argument");
      assert.match(
        error.message,
        /^cannot (read|write) the state file \S+state\.json: illegal operation on a directory \(EISDIR\): \S+state\.json is a directory, not a file$/,
      );
      assert.match(error.hint ?? "", /^move \S+state\.json away/);
      return true;
    });
  }
});

test("a state directory under a file: the errno in words, then its code", async (t) => {
  const file = join(scratch(t), "not-a-directory");
  writeFileSync(file, "");
  await assert.rejects(createStateFile(join(file, "below")).read(), {
    message: new RegExp(`: not a directory \\(ENOTDIR\\) \\(${file}/below must be a directory`),
  });
});

// A state file edited by hand or cut short: refused with the field and the next step, the file left
// as it was (the engine reads the state before it changes anything: test/cli/state-invalid.e2e).
const INVALID: readonly (readonly [string, (text: string) => string, RegExp])[] = [
  ["cut short", (text) => text.slice(0, text.length / 2), /not JSON .*cut short/],
  [
    "a table as text",
    (text) => text.replace('"table": 20000', '"table": "20000"'),
    /allocations\.a\.table: must be a table number from 1 to 4294967295; got "20000"/,
  ],
  [
    "a sysctl name that leaves /proc/sys",
    (text) => text.replace('"net/ipv4/conf/all/rp_filter"', '"net/ipv4/conf/../../../../etc/motd"'),
    /previousSysctls\["net\/ipv4\/conf\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/motd"\]: sysctl name .* is not one of symroute's/,
  ],
  [
    "a created link that is no interface name",
    (text) => text.replace('"createdLinks": []', '"createdLinks": ["eth0 100"]'),
    /createdLinks\[0\]: interface name "eth0 100" is not allowed/,
  ],
  [
    "a required field removed",
    (text) => text.replace(/"allocations": \{[^}]*\}\s*\},/, ""),
    /allocations: is missing; must be a mapping of network names/,
  ],
  ["another version", (text) => text.replace('"version": 1', '"version": 2'), /version: must be 1/],
];

for (const [what, edit, expected] of INVALID) {
  test(`a state file with ${what} is refused, naming the field and what to do, and left as it is`, async (t) => {
    const dir = scratch(t);
    for (const keepReads of [false, true]) {
      const store = createStateFile(dir, { keepReads });
      await store.write(state([]));
      await store.read();
      const text = edit(readFileSync(store.location, "utf8"));
      writeFileSync(store.location, text);
      await assert.rejects(store.read(), (error: unknown) => {
        assert.ok(isSymrouteError(error), String(error));
        assert.equal(error.kind, "invalid-argument");
        assert.match(error.message, new RegExp(`the state file ${store.location} is not valid: `));
        assert.match(error.message, expected);
        assert.match(
          error.hint ?? "",
          /nothing was changed\. Restore .* from a backup, or correct the field named/,
        );
        return true;
      });
      assert.equal(readFileSync(store.location, "utf8"), text, "the file is left as it was");
    }
  });
}

test("older state files load as they were written: the first version's fields, and today's without the optional ones", async (t) => {
  const dir = scratch(t);
  const store = createStateFile(dir);
  await store.write(state([]));
  for (const name of ["fixtures/state-first-version.json", "../plan/cases/route-protocol-move/saved.json"]) {
    const text = readFileSync(new URL(name, import.meta.url), "utf8");
    writeFileSync(store.location, text);
    assert.deepEqual(await store.read(), JSON.parse(text), name);
  }
  // A field a later version adds is kept, not refused: a downgrade still reads the file.
  writeFileSync(store.location, JSON.stringify({ ...state([]), laterField: { x: 1 } }));
  assert.deepEqual(await store.read(), { ...state([]), laterField: { x: 1 } });
  // Within a mapping too: a later front end's contents, a later field of an allocation.
  const later = {
    ...state([]),
    allocations: { a: { table: 20000, mark: 1, laterField: 2 } },
    firewallContents: { nftables: ["rule"], laterFrontEnd: ["rule"] },
  };
  writeFileSync(store.location, JSON.stringify(later));
  assert.deepEqual(await store.read(), later);
});

test("a sysctl of a link whose name the config would refuse loads: symroute records every link's rp_filter", async (t) => {
  // The kernel allows any name without '/', ':' or whitespace (dev_valid_name); lowering conf.all,
  // symroute raises and records each other link's rp_filter, whatever its name.
  const store = createStateFile(scratch(t));
  const names = [
    "net/ipv4/conf/odd+1/rp_filter",
    "net/ipv4/conf/veth@x#1/rp_filter",
    "net/ipv4/conf/.x/rp_filter",
  ];
  const written = { ...state([]), previousSysctls: Object.fromEntries(names.map((n) => [n, "0"])) };
  await store.write(written);
  assert.deepEqual(await store.read(), written);
  // Still never a path out of /proc/sys/net/ipv4/conf.
  for (const name of [
    "net/ipv4/conf/../rp_filter",
    "net/ipv4/conf/./rp_filter",
    "net/ipv4/conf/a:b/rp_filter",
  ]) {
    writeFileSync(store.location, JSON.stringify({ ...state([]), previousSysctls: { [name]: "0" } }));
    await assert.rejects(store.read(), /is not one of symroute's/, name);
  }
});

// A field SavedState gains without its line in the schema would be read unchecked (kept as an
// unknown key): the type check fails here, naming it.
type UncheckedFields = Exclude<keyof SavedState, keyof typeof savedStateSchema.shape>;
const everyFieldChecked: [UncheckedFields] extends [never] ? true : UncheckedFields = true;

test("the state file's schema checks every field SavedState has", () => {
  assert.equal(everyFieldChecked, true);
});

test("a record written before an apply names the mangle tables it may make: read back, and a family that is not one refused by name", async (t) => {
  const store = createStateFile(scratch(t));
  const before = { ...state([]), inProgress: true, iptablesTablesCreating: [4, 6] } as SavedState;
  await store.write(before);
  assert.deepEqual(await store.read(), before);
  writeFileSync(store.location, JSON.stringify({ ...before, iptablesTablesCreating: [5] }));
  await assert.rejects(store.read(), /iptablesTablesCreating\[0\]/);
});
