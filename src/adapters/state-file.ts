// symroute's memory between runs: one JSON file per network namespace, written atomically
// (temp file, fsync, rename), and a namespace-scoped lock so that two runs in one namespace never
// interleave.

import type { BigIntStats } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { parseSavedState } from "../config/state-schema.ts";
import { fileErrorText } from "./file-error.ts";
import { SymrouteError } from "../model/errors.ts";
import { counted } from "../model/plural.ts";
import { isLock, tryNamespaceLock } from "./namespace-lock.ts";
import type { SavedState, StateStore } from "../engine/ports.ts";

export const DEFAULT_STATE_DIR = "/var/lib/symroute";
/** The abstract socket name of the apply lock (one per network namespace). */
export const APPLY_LOCK_NAME = "symroute-apply";

/** Identity of the current network namespace: the inode of /proc/self/ns/net. */
export async function networkNamespaceId(): Promise<string> {
  try {
    const s = await stat("/proc/self/ns/net");
    return `netns-${s.dev}-${s.ino}`;
  } catch (cause) {
    throw new SymrouteError("not-supported", "cannot identify the network namespace (/proc/self/ns/net)", {
      cause,
      hint: "symroute runs on Linux with /proc mounted",
    });
  }
}

const isPermission = (cause: unknown): boolean => {
  const code = (cause as NodeJS.ErrnoException).code;
  return code === "EACCES" || code === "EPERM";
};

/**
 * A state directory that is not one (`--state-dir` names a file, or a file is in the way on its
 * path; or `state.json` is a directory): the user's choice of path, not the kernel's fault.
 */
function notADirectory(cause: unknown): boolean {
  const code = (cause as NodeJS.ErrnoException).code;
  return code === "ENOTDIR" || code === "EEXIST" || code === "EISDIR";
}

function notADirectoryError(what: string, stateDir: string, file: string, cause: unknown): SymrouteError {
  // EISDIR: the state directory is fine, but its state.json (or state.json.tmp) is a directory.
  if ((cause as NodeJS.ErrnoException).code === "EISDIR")
    return new SymrouteError(
      "invalid-argument",
      `${what}: ${fileErrorText(cause)}: ${file} is a directory, not a file`,
      {
        cause,
        hint: `move ${file} away (symroute writes the file there), or choose another directory with --state-dir`,
      },
    );
  return new SymrouteError(
    "invalid-argument",
    `${what}: ${fileErrorText(cause)} (${stateDir} must be a directory, or a path where one can be made)`,
    {
      cause,
      hint: "choose a directory with --state-dir (or the configuration's stateDir); symroute makes it when it is missing",
    },
  );
}

/** A state file or directory this user may not use: its own kind, and what to do about it. */
function permissionError(what: string, stateDir: string, cause: unknown): SymrouteError {
  return new SymrouteError("permission", `${what}: ${fileErrorText(cause)}`, {
    cause,
    hint:
      `this user may not use ${stateDir} (root without CAP_DAC_OVERRIDE cannot use a directory it does not ` +
      `own): run symroute as the user that owns it, fix its owner, or choose another directory with --state-dir`,
  });
}

export interface StateFileOptions {
  /**
   * Give the last state read again while the file is the same file unchanged (device, inode,
   * size, modification and change times, by one `stat`): the agent reads the state on every
   * reconcile (at 1,000 networks some 600 KB of JSON, parsed under `--lite-mode`), and reads it
   * again after each reconcile, off the reconcile's path, so that the next one finds it parsed.
   * What it writes itself it keeps as well, as the read of that file would give it. The state is
   * never modified by its readers.
   */
  readonly keepReads?: boolean;
}

/** What tells one version of a file from another without reading it. */
const identityOf = (s: BigIntStats): string => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;

/** The state of the current network namespace under `stateDir` (resolved on first use). */
export function createStateFile(
  stateDir: string = DEFAULT_STATE_DIR,
  options: StateFileOptions = {},
): StateStore {
  let dir = "";
  let file = "";
  /**
   * keepReads: the last state read or written, and the identity of that file; a state written is
   * kept as its text until asked for (parsed off the reconcile's path, by the read after it).
   */
  let kept: { readonly identity: string; state: SavedState | string } | undefined;
  const resolve = async (): Promise<void> => {
    if (dir !== "") return;
    dir = `${stateDir}/${await networkNamespaceId()}`;
    file = `${dir}/state.json`;
  };

  const ensureDir = async (): Promise<void> => {
    await resolve();
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      if (isPermission(cause))
        throw permissionError(`cannot create the state directory ${dir}`, stateDir, cause);
      if (notADirectory(cause))
        throw notADirectoryError(`cannot create the state directory ${dir}`, stateDir, dir, cause);
      throw new SymrouteError("kernel", `cannot create the state directory ${dir}: ${fileErrorText(cause)}`, {
        cause,
        hint: "choose another directory with --state-dir",
      });
    }
  };

  return {
    get location(): string {
      return file === "" ? `${stateDir}/<network namespace>/state.json` : file;
    },

    async read(): Promise<SavedState | undefined> {
      await resolve();
      if (options.keepReads === true && kept !== undefined) {
        const now = await stat(file, { bigint: true }).catch(() => undefined);
        if (now !== undefined && identityOf(now) === kept.identity) {
          if (typeof kept.state === "string") kept.state = JSON.parse(kept.state) as SavedState;
          return kept.state;
        }
      }
      let text: string;
      let identity: string;
      try {
        // The identity and the text from one open file: a rename in between cannot mix them up.
        const handle = await open(file, "r");
        try {
          identity = identityOf(await handle.stat({ bigint: true }));
          text = await handle.readFile("utf8");
        } finally {
          await handle.close();
        }
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        if (isPermission(cause)) throw permissionError(`cannot read the state file ${file}`, stateDir, cause);
        if (notADirectory(cause))
          throw notADirectoryError(`cannot read the state file ${file}`, stateDir, file, cause);
        throw new SymrouteError("kernel", `cannot read the state file ${file}: ${fileErrorText(cause)}`, {
          cause,
          hint: "check the state directory (--state-dir)",
        });
      }
      const parsed = parseSavedState(text);
      if (!parsed.ok) {
        const [first = "", ...more] = parsed.problems;
        throw new SymrouteError(
          "invalid-argument",
          `the state file ${file} is not valid: ${first}${more.length === 0 ? "" : ` (and ${counted(more.length, "more problem")})`}`,
          {
            details: parsed.problems,
            hint:
              `nothing was changed. Restore ${file} from a backup, or correct the field named; move it away ` +
              `only if the node holds none of symroute's objects (\`symroute delete --dry-run --state-dir\` an empty ` +
              `directory says whether it finds any; plan reads this file too and refuses it the same way): delete ` +
              `needs it to put the node back as it was`,
          },
        );
      }
      // The schema holds every field SavedState has, as today's writer and older files have them.
      const state: SavedState = parsed.state;
      if (options.keepReads === true) kept = { identity, state };
      return state;
    },

    async write(state: SavedState): Promise<void> {
      await ensureDir();
      // One fixed name: writers hold the namespace lock, and a run killed between write and rename
      // leaves at most this one file, which the next write replaces.
      const tmp = `${file}.tmp`;
      const text = `${JSON.stringify(state, null, 2)}\n`;
      let identity: string | undefined;
      try {
        const handle = await open(tmp, "w", 0o600);
        try {
          await handle.writeFile(text);
          await handle.sync();
          await rename(tmp, file);
          // The identity of the file as renamed (a rename changes its ctime), from the open file
          // itself: another writer's file at the same path cannot be taken for ours.
          if (options.keepReads === true) identity = identityOf(await handle.stat({ bigint: true }));
        } finally {
          await handle.close();
        }
      } catch (cause) {
        kept = undefined;
        await rm(tmp, { force: true }).catch(() => undefined);
        if (isPermission(cause))
          throw permissionError(`cannot write the state file ${file}`, stateDir, cause);
        if (notADirectory(cause))
          throw notADirectoryError(`cannot write the state file ${file}`, stateDir, file, cause);
        const code = (cause as NodeJS.ErrnoException).code;
        throw new SymrouteError("kernel", `cannot write the state file ${file}: ${fileErrorText(cause)}`, {
          cause,
          hint:
            code === "ENOSPC"
              ? "the disk is full: free space and run again"
              : "check the state directory (--state-dir)",
        });
      }
      // keepReads: the state as the next read would give it, without reading and checking the file
      // again (12-14 ms of CPU at 1,000 networks, every reconcile): the text just written, parsed
      // when asked for. The schema keeps what it accepts as it is (no defaults, no transforms,
      // unknown keys kept), and accepts every state the engine writes
      // (test/adapters/state-file-kept-write.test.ts).
      kept = identity === undefined ? undefined : { identity, state: text };
    },

    async remove(): Promise<void> {
      await resolve();
      kept = undefined;
      await rm(file, { force: true });
    },

    async lock(waitMs: number): Promise<() => Promise<void>> {
      // Scoped to the network namespace, like the state itself; released by the kernel if we die.
      const deadline = Date.now() + waitMs;
      for (let attempt = 0; ; attempt++) {
        const result = await tryNamespaceLock(APPLY_LOCK_NAME);
        if (isLock(result)) return () => result.release();
        if (Date.now() >= deadline) {
          throw new SymrouteError(
            "busy",
            `another symroute${result.pid === undefined ? "" : ` (pid ${result.pid})`} is changing this network namespace`,
            {
              hint: "wait for it to finish, or raise --lock-wait; the agent and a manual apply take turns",
              retriable: true,
            },
          );
        }
        await delay(Math.min(20 * (attempt + 1), 200));
      }
    },
  };
}
