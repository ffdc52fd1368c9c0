// The one way symroute starts a process: an argument array, never a shell; C locale so that
// error texts can be classified; stdin for batch payloads.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SymrouteError } from "../model/errors.ts";

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly input?: string;
  /** Do not throw on a non-zero exit; the caller classifies the result. */
  readonly allowFailure?: boolean;
}

/** Runs `file args...`; the tool-runner seam that fakes replace in tests. */
export type ToolRunner = (file: string, args: readonly string[], options?: RunOptions) => Promise<ToolResult>;

const PACKAGE_OF: Readonly<Record<string, string>> = {
  ip: "iproute2",
  nft: "nftables",
  iptables: "iptables",
  ip6tables: "iptables",
  "iptables-save": "iptables",
  "iptables-restore": "iptables",
  "ip6tables-save": "iptables",
  "ip6tables-restore": "iptables",
  conntrack: "conntrack",
};

/** Where tool output goes instead of a pipe: memory-backed first. */
const SPILL_DIRS = ["/dev/shm", tmpdir()];
let spillSerial = 0;

/**
 * An unlinked temporary file for a tool's standard output, or undefined (then a pipe is used). A
 * pipe holds 64 KiB: a tool listing thousands of routes or rules would wait for this process's
 * event loop, which is busy compiling or planning while the early reads run; a file never blocks
 * the writer. Created exclusively (O_EXCL, mode 0600) and unlinked at once: nothing to clean up,
 * nothing another user can open.
 */
function spillFile(): number | undefined {
  for (const dir of SPILL_DIRS) {
    const path = join(dir, `.symroute-${process.pid}-${++spillSerial}-${randomBytes(6).toString("hex")}`);
    try {
      const fd = openSync(path, "wx+", 0o600);
      unlinkSync(path);
      return fd;
    } catch {
      // not writable here (a read-only root file system): try the next place, else a pipe
    }
  }
  return undefined;
}

/**
 * Inputs larger than this go to the tool from an unlinked file instead of a pipe: a pipe takes
 * 64 KiB at a time, so a tool reading a megabyte of batch lines would wait for this process's event
 * loop between chunks, and the loop has other work while the tools run (the other tool's payload,
 * verification, the report).
 */
const INPUT_FILE_THRESHOLD = 32 * 1024;

/**
 * An unlinked file holding `input`, positioned at its start (pwrite leaves the offset alone), or
 * undefined when no file could be made (then the input goes through a pipe).
 */
function inputFile(input: string): number | undefined {
  const fd = spillFile();
  if (fd === undefined) return undefined;
  try {
    const bytes = Buffer.from(input, "utf8");
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, done);
    return fd;
  } catch {
    closeSync(fd); // a full /dev/shm: the pipe still works
    return undefined;
  }
}

/** Everything the tool wrote to the spill file, and the file closed. */
function readSpill(fd: number): Buffer {
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buffer, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return buffer.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

export const runTool: ToolRunner = (file, args, options = {}) =>
  new Promise<ToolResult>((resolve, reject) => {
    let spill = spillFile();
    const input = options.input ?? "";
    const stdin = input.length > INPUT_FILE_THRESHOLD ? inputFile(input) : undefined;
    let child;
    try {
      child = spawn(file, [...args], {
        env: { ...process.env, LC_ALL: "C", LANG: "C" },
        stdio: [stdin ?? "pipe", spill ?? "pipe", "pipe"],
      });
    } catch (error) {
      if (spill !== undefined) closeSync(spill);
      throw error;
    } finally {
      // The child has its own copy of the descriptor now (or never will).
      if (stdin !== undefined) closeSync(stdin);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const stdout = (): string => {
      if (spill === undefined) return Buffer.concat(out).toString("utf8");
      const text = readSpill(spill).toString("utf8");
      spill = undefined;
      return text;
    };
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (spill !== undefined) {
        closeSync(spill);
        spill = undefined;
      }
      if (error.code === "ENOENT") {
        const pkg = PACKAGE_OF[file];
        reject(
          new SymrouteError("dependency", `required tool "${file}" is not installed`, {
            cause: error,
            hint:
              pkg === undefined ? undefined : `install the Debian package ${pkg} (apt-get install ${pkg})`,
          }),
        );
      } else {
        reject(new SymrouteError("kernel", `could not run ${file}: ${error.message}`, { cause: error }));
      }
    });
    child.stdin?.on("error", () => {
      // EPIPE when the tool exits before reading its input: its exit status tells the story.
    });
    child.on("close", (code) => {
      const result = {
        code: code ?? 1,
        stdout: stdout(),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (result.code !== 0 && options.allowFailure !== true) {
        reject(toolError(file, args, result));
      } else {
        resolve(result);
      }
    });
    child.stdin?.end(input);
  });

const PERMISSION_PATTERNS = [
  /Operation not permitted/i,
  /Permission denied/i,
  /must be root/i,
  /you must be root/i,
];

/** A failed tool run as a SymrouteError; permission problems get their own kind and hint. */
export function toolError(file: string, args: readonly string[], result: ToolResult): SymrouteError {
  const stderr = result.stderr.trim();
  const firstLine = stderr.split("\n")[0] ?? "";
  const permission = PERMISSION_PATTERNS.some((p) => p.test(stderr));
  return new SymrouteError(
    permission ? "permission" : "kernel",
    `${file} ${args.join(" ")} failed (exit ${result.code})${firstLine === "" ? "" : `: ${firstLine}`}`,
    {
      details: stderr === "" ? [] : stderr.split("\n"),
      hint: permission ? "run symroute as root (or with CAP_NET_ADMIN)" : undefined,
    },
  );
}
