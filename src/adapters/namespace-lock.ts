// Locks scoped to the network namespace: a listening socket in the abstract Unix namespace, which
// Linux scopes to the network namespace. A second holder in the same namespace cannot bind the
// name, holders in other namespaces do not see it, and the kernel releases it the moment the holder
// dies: no stale lock file to take over, and no pid that another pid namespace (a container) may
// have reused. A connection to it only receives the holder's pid and start time, for messages.

import { connect, createServer, type Server } from "node:net";
import { SymrouteError } from "../model/errors.ts";

interface NamespaceLock {
  release(): Promise<void>;
}

interface LockHolder {
  readonly pid?: number;
  readonly startedAt?: string;
}

/** Take the lock, or answer who holds it (undefined means: taken). */
export async function tryNamespaceLock(name: string): Promise<NamespaceLock | LockHolder> {
  const path = `\0${name}`;
  const startedAt = new Date().toISOString();
  const server: Server = createServer((socket) => {
    socket.on("error", () => {});
    socket.end(`${JSON.stringify({ pid: process.pid, startedAt })}\n`);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ path }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EADDRINUSE") {
      throw new SymrouteError("kernel", `cannot take the lock @${name}: ${String(error)}`, { cause: error });
    }
    return askHolder(path);
  }
  server.unref();
  return { release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

export const isLock = (x: NamespaceLock | LockHolder): x is NamespaceLock => "release" in x;

function askHolder(path: string): Promise<LockHolder> {
  return new Promise<LockHolder>((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ path });
    const done = (): void => {
      socket.destroy();
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as LockHolder);
      } catch {
        resolve({});
      }
    };
    socket.setTimeout(1_000, done);
    socket.on("data", (b: Buffer) => chunks.push(b));
    socket.on("end", done);
    socket.on("error", () => resolve({}));
  });
}
