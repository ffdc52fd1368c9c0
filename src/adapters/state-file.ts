// symroute's memory between runs: one JSON file per network namespace, written atomically
// (temp file, fsync, rename), and a lock file so that two runs in one namespace never interleave.

import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { SymrouteError } from "../model/errors.ts";
import type { SavedState, StateStore } from "../engine/ports.ts";

export const DEFAULT_STATE_DIR = "/var/lib/symroute";

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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The state of the current network namespace under `stateDir` (resolved on first use). */
export function createStateFile(stateDir: string = DEFAULT_STATE_DIR): StateStore {
  let dir = "";
  let file = "";
  let lockFile = "";
  const resolve = async (): Promise<void> => {
    if (dir !== "") return;
    dir = `${stateDir}/${await networkNamespaceId()}`;
    file = `${dir}/state.json`;
    lockFile = `${dir}/apply.lock`;
  };

  const ensureDir = async (): Promise<void> => {
    await resolve();
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new SymrouteError(
        code === "EACCES" || code === "EPERM" ? "permission" : "kernel",
        `cannot create the state directory ${dir}: ${code ?? String(cause)}`,
        {
          cause,
          hint: "run as root, or choose another directory with --state-dir",
        },
      );
    }
  };

  return {
    get location(): string {
      return file === "" ? `${stateDir}/<network namespace>/state.json` : file;
    },

    async read(): Promise<SavedState | undefined> {
      await resolve();
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new SymrouteError("kernel", `cannot read the state file ${file}`, { cause });
      }
      try {
        const state = JSON.parse(text) as SavedState;
        if (state.version !== 1) throw new Error(`unknown version ${String(state.version)}`);
        return state;
      } catch (cause) {
        throw new SymrouteError(
          "invalid-argument",
          `the state file ${file} is not valid: ${(cause as Error).message}`,
          {
            cause,
            hint: "move it away only if you know the node holds no symroute objects, or restore it from a backup",
          },
        );
      }
    },

    async write(state: SavedState): Promise<void> {
      await ensureDir();
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        const handle = await open(tmp, "w", 0o600);
        try {
          await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tmp, file);
      } catch (cause) {
        await rm(tmp, { force: true });
        const code = (cause as NodeJS.ErrnoException).code;
        throw new SymrouteError("kernel", `cannot write the state file ${file}: ${code ?? String(cause)}`, {
          cause,
          hint:
            code === "ENOSPC"
              ? "the disk is full: free space and run again"
              : "check the state directory (--state-dir)",
        });
      }
    },

    async remove(): Promise<void> {
      await resolve();
      await rm(file, { force: true });
    },

    async lock(waitMs: number): Promise<() => Promise<void>> {
      await ensureDir();
      const deadline = Date.now() + waitMs;
      for (let attempt = 0; ; attempt++) {
        try {
          const handle = await open(lockFile, "wx", 0o600);
          await handle.writeFile(String(process.pid));
          await handle.close();
          return async () => {
            await rm(lockFile, { force: true });
          };
        } catch (cause) {
          if ((cause as NodeJS.ErrnoException).code !== "EEXIST") throw cause;
        }
        const holder = Number((await readFile(lockFile, "utf8").catch(() => "")).trim());
        if (!Number.isInteger(holder) || holder <= 0 || !pidAlive(holder)) {
          // A crashed run left its lock behind: take it over.
          await rm(lockFile, { force: true });
          continue;
        }
        if (Date.now() >= deadline) {
          throw new SymrouteError(
            "busy",
            `another symroute (pid ${holder}) is changing this network namespace`,
            {
              hint: "wait for it to finish; the agent and a manual apply must not run at once",
              retriable: true,
            },
          );
        }
        await delay(Math.min(50 * (attempt + 1), 250));
      }
    },
  };
}
