// The config file's events (src/agent/config-source.ts): a file put in place whole by a rename (a
// temporary file moved over it, ConfigMap's `..data` swap) is read at once, without the debounce
// window; an edit written in place, or a new file written where the old one was deleted, is never
// read half written within that window (the configuration in force stays until the debounced read),
// whoever asks for the configuration (a kernel event's reconcile included). Real files and
// inotify, a fake clock for the window.

import { strict as assert } from "node:assert";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import { ConfigSource, type Desired } from "../../src/agent/config-source.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { FakeClock } from "./support/fake-clock.ts";

const root = mkdtempSync(join(tmpdir(), "symroute-config-source-"));
after(() => rmSync(root, { recursive: true, force: true }));

const DEBOUNCE_MS = 20;

/** A valid configuration of `n` networks, each entry on one line. */
function config(n: number): string {
  const lines = ["networks:"];
  for (let i = 0; i < n; i++)
    lines.push(`  - { name: n${i}, addresses: [100.64.${i}.0/24], interface: ext0, gateway: 100.64.${i}.1 }`);
  return `${lines.join("\n")}\n`;
}

/** The number of networks of the configuration the source gives now. */
async function networks(source: ConfigSource): Promise<number> {
  const desired: Desired = await source.desired();
  assert.ok(desired.ready);
  return desired.config.networks.length;
}

interface Watched {
  readonly source: ConfigSource;
  readonly clock: FakeClock;
  /** The triggers so far, with whether each asked to skip the debounce. */
  readonly triggers: { readonly reason: string; readonly immediate: boolean }[];
  /** Resolves once `count` triggers have come in all. */
  triggered(count: number): Promise<void>;
}

let dirs = 0;

/** A source watching `file` (in a directory of its own, holding `text`), with a first read done. */
async function watched(setUp: (dir: string) => string): Promise<Watched> {
  const dir = join(root, `d${dirs++}`);
  mkdirSync(dir);
  const file = setUp(dir);
  const clock = new FakeClock();
  const source = new ConfigSource({
    configFile: file,
    clock,
    logger: createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
    metrics: createMetrics(),
    debounceMs: DEBOUNCE_MS,
  });
  const triggers: { reason: string; immediate: boolean }[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  source.start((reason, options) => {
    triggers.push({ reason, immediate: options?.immediate === true });
    for (const w of waiters.filter((w) => triggers.length >= w.count)) w.resolve();
  });
  after(() => source.stop());
  const triggered = (count: number): Promise<void> => {
    if (triggers.length >= count) return Promise.resolve();
    // The source's watcher does not keep the process alive (the agent's server does): this does,
    // until the events come.
    const alive = setInterval(() => undefined, 60_000);
    return new Promise<void>((resolve) => waiters.push({ count, resolve })).finally(() =>
      clearInterval(alive),
    );
  };
  return { source, clock, triggers, triggered };
}

/** A watched plain file (agent.yaml, one network), with its path. */
async function watchedPlainFile(): Promise<Watched & { readonly file: string }> {
  let file = "";
  const w = await watched((dir) => {
    file = join(dir, "agent.yaml");
    writeFileSync(file, config(1));
    return file;
  });
  return { ...w, file };
}

describe("ConfigSource: the config file's edits", () => {
  it("reads a file renamed over the config file at once", async () => {
    const w = await watchedPlainFile();
    const { file } = w;
    assert.equal(await networks(w.source), 1);
    writeFileSync(`${file}.tmp`, config(3));
    renameSync(`${file}.tmp`, file);
    await w.triggered(1);
    assert.deepEqual(w.triggers[0], { reason: "config-file", immediate: true });
    // No time has passed: the debounce window is still open, and the renamed file is read.
    assert.equal(await networks(w.source), 3);
  });

  it("reads a ConfigMap's ..data swap at once", async () => {
    let dirOf = "";
    const w = await watched((dir) => {
      dirOf = dir;
      mkdirSync(join(dir, "..v1"));
      writeFileSync(join(dir, "..v1", "agent.yaml"), config(1));
      symlinkSync("..v1", join(dir, "..data"));
      symlinkSync(join("..data", "agent.yaml"), join(dir, "agent.yaml"));
      return join(dir, "agent.yaml");
    });
    assert.equal(await networks(w.source), 1);
    // As the kubelet does: the new files in a new directory, then a symlink renamed over ..data.
    mkdirSync(join(dirOf, "..v2"));
    writeFileSync(join(dirOf, "..v2", "agent.yaml"), config(2));
    symlinkSync("..v2", join(dirOf, "..data_tmp"));
    renameSync(join(dirOf, "..data_tmp"), join(dirOf, "..data"));
    await w.triggered(1);
    assert.equal(w.triggers[0]?.immediate, true);
    assert.equal(await networks(w.source), 2);
  });

  it("never reads an edit written in place within the debounce window", async () => {
    const w = await watchedPlainFile();
    const { file } = w;
    assert.equal(await networks(w.source), 1);
    // Half of the new text: itself a valid configuration with fewer networks.
    const full = config(4);
    const half = config(2);
    assert.ok(full.startsWith(half));
    const fd = openSync(file, "r+");
    try {
      writeSync(fd, half, 0);
      await w.triggered(1);
      assert.equal(w.triggers[0]?.immediate, false);
      // A reconcile in the window (a kernel event's): the half file is not used.
      assert.equal(await networks(w.source), 1);
      writeSync(fd, full.slice(half.length), half.length);
    } finally {
      closeSync(fd);
    }
    await w.clock.advance(DEBOUNCE_MS);
    assert.equal(await networks(w.source), 4);
    assert.ok(w.triggers.every((t) => !t.immediate));
  });

  it("never reads a new file written where the old one was deleted within the window", async () => {
    const w = await watchedPlainFile();
    const { file } = w;
    assert.equal(await networks(w.source), 1);
    unlinkSync(file);
    const fd = openSync(file, "wx");
    try {
      writeSync(fd, config(2));
      // The deletion's and the creation's events.
      await w.triggered(2);
      assert.equal(await networks(w.source), 1);
      writeSync(fd, config(5).slice(config(2).length));
    } finally {
      closeSync(fd);
    }
    await w.clock.advance(DEBOUNCE_MS);
    assert.equal(await networks(w.source), 5);
    assert.ok(w.triggers.every((t) => !t.immediate));
  });

  it("never reads a file an editor writes in place after renaming the old one to a backup", async () => {
    const w = await watchedPlainFile();
    const { file } = w;
    assert.equal(await networks(w.source), 1);
    // vim and emacs: the old file becomes the backup, the new one is created and written.
    renameSync(file, `${file}~`);
    const fd = openSync(file, "wx");
    try {
      writeSync(fd, config(2));
      await w.triggered(2);
      assert.equal(await networks(w.source), 1);
      writeSync(fd, config(3).slice(config(2).length));
    } finally {
      closeSync(fd);
    }
    await w.clock.advance(DEBOUNCE_MS);
    assert.equal(await networks(w.source), 3);
    assert.ok(w.triggers.every((t) => !t.immediate));
  });

  it("uses a renamed file only as it was when its event came", async () => {
    const w = await watchedPlainFile();
    const { file } = w;
    assert.equal(await networks(w.source), 1);
    writeFileSync(`${file}.tmp`, config(2));
    renameSync(`${file}.tmp`, file);
    await w.triggered(1);
    assert.equal(w.triggers[0]?.immediate, true);
    // Then written in place before the read (its own event may not have come yet).
    const fd = openSync(file, "r+");
    try {
      writeSync(fd, config(3), 0);
      assert.equal(await networks(w.source), 1, "the file changed since its rename: not used in the window");
      writeSync(fd, config(6).slice(config(3).length), config(3).length);
    } finally {
      closeSync(fd);
    }
    await w.clock.advance(DEBOUNCE_MS);
    assert.equal(await networks(w.source), 6);
  });
});

describe("ConfigSource: a config file it cannot read", () => {
  it("logs the errno in words, the path and the next step, keeps the last good configuration, and calls it stale", async () => {
    const dir = join(root, `d${dirs++}`);
    mkdirSync(dir);
    const file = join(dir, "agent.yaml");
    writeFileSync(file, config(2));
    const lines: string[] = [];
    const source = new ConfigSource({
      configFile: file,
      clock: new FakeClock(),
      logger: createLogger(
        "error",
        new Writable({
          write: (chunk: Buffer, _e, done) => {
            lines.push(chunk.toString());
            done();
          },
        }),
      ),
      metrics: createMetrics(),
      debounceMs: DEBOUNCE_MS,
    });
    assert.equal(await networks(source), 2);
    unlinkSync(file);
    assert.equal(await networks(source), 2);
    const logged = JSON.parse(lines.at(-1) ?? "{}") as Record<string, unknown>;
    assert.equal(logged["msg"], "cannot read the config file; keeping the last good one");
    assert.equal(logged["file"], file);
    assert.equal(logged["err"], "no such file or directory (ENOENT)");
    assert.match(String(logged["hint"]), new RegExp(`^put the file back at ${file}`));
    // /readyz says so, as for a refused edit (it said "converged" and nothing else).
    assert.equal(
      source.staleNote(),
      `; the running config is stale: ${file} cannot be read (no such file or directory (ENOENT)), the last good configuration stays in force`,
    );
    // Back as it was: no longer stale. Back refused: stale with the file's problems.
    writeFileSync(file, config(2));
    assert.equal(await networks(source), 2);
    assert.equal(source.staleNote(), "");
    unlinkSync(file);
    await source.desired();
    writeFileSync(file, "networks: 7\n");
    assert.equal(await networks(source), 2);
    assert.match(source.staleNote(), /the last edit of .* was refused \(.*networks/);
  });

  it("without a good configuration yet, the error names the path, the errno in words and the next step", async () => {
    const dir = join(root, `d${dirs++}`);
    mkdirSync(dir);
    const source = new ConfigSource({
      configFile: dir,
      clock: new FakeClock(),
      logger: createLogger("error", new Writable({ write: (_c, _e, done) => done() })),
      metrics: createMetrics(),
      debounceMs: DEBOUNCE_MS,
    });
    await assert.rejects(source.desired(), {
      message: `cannot read the config file ${dir}: illegal operation on a directory (EISDIR)`,
      hint: `${dir} is a directory: --config takes the file itself`,
    });
  });
});
