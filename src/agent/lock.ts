// One agent per network namespace. The lock is a listening socket in the abstract Unix namespace,
// which Linux scopes to the network namespace: a second agent in the same namespace cannot bind the
// name, agents in other namespaces do not see it, and the kernel releases it the moment the holder
// dies (no stale lock file to take over, no pid that another pid namespace may have reused, which a
// lock file on a DaemonSet's hostPath would suffer from). A connection to it only receives the
// holder's pid and start time, for the error message; it reads nothing.

import { connect, createServer, type Server } from "node:net";
import { SymrouteError } from "../model/errors.ts";

export const AGENT_LOCK_NAME = "symroute-agent";

export interface AgentLock {
  release(): Promise<void>;
}

interface Holder {
  readonly pid?: number;
  readonly startedAt?: string;
}

export async function acquireAgentLock(name: string = AGENT_LOCK_NAME): Promise<AgentLock> {
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
      throw new SymrouteError("kernel", `cannot take the agent lock @${name}: ${String(error)}`, {
        cause: error,
      });
    }
    const holder = await askHolder(path);
    throw new SymrouteError(
      "busy",
      `another symroute agent already runs in this network namespace` +
        (holder.pid === undefined ? "" : ` (pid ${holder.pid}, started ${holder.startedAt ?? "?"})`),
      {
        hint: "run one agent per network namespace: stop the other one first (with a DaemonSet, check for a host systemd unit too)",
      },
    );
  }
  server.unref();
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function askHolder(path: string): Promise<Holder> {
  return new Promise<Holder>((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ path });
    const done = (): void => {
      socket.destroy();
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Holder);
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
