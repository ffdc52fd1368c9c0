// Client traffic through the LB address while the agent's container is replaced: one TCP
// connection held open (a message echoed every INTERVAL ms), and a new connection every INTERVAL
// ms (connect, echo, close). Runs inside the client's namespace until its stdin closes, then
// prints one JSON summary: what failed, and the worst gaps seen. A line "mark" on stdin closes the
// current phase (its figures are kept apart: a baseline before a restart, the restart after it);
// every 50 successful new connections it prints "ok N" (N counted in the current phase).
//
//   ip netns exec CLIENT node --import tsx traffic.ts HOST PORT INTERVAL_MS

import { connect, type Socket } from "node:net";

const [host = "", portText = "", intervalText = "20"] = process.argv.slice(2);
const port = Number(portText);
const interval = Number(intervalText);
// A reply later than this is counted as a failure (the verdict "dropped"), not waited for.
const VERDICT_MS = 3_000;

interface Summary {
  newOk: number;
  newFailed: string[];
  heldEchoes: number;
  heldFailure?: string;
  /** Longest connect-to-echo time of a new connection. */
  worstNewMs: number;
  /** Longest time between two successive successful new connections (includes the interval). */
  worstGapMs: number;
  /** Longest time a held-connection message waited for its echo. */
  worstHeldMs: number;
  /** The same figures per phase (phases end at each "mark" on stdin). */
  phases: Phase[];
}

interface Phase {
  newOk: number;
  worstNewMs: number;
  worstGapMs: number;
  worstHeldMs: number;
}

const summary: Summary = {
  newOk: 0,
  newFailed: [],
  heldEchoes: 0,
  worstNewMs: 0,
  worstGapMs: 0,
  worstHeldMs: 0,
  phases: [{ newOk: 0, worstNewMs: 0, worstGapMs: 0, worstHeldMs: 0 }],
};
const phase = (): Phase => summary.phases.at(-1) as Phase;
let stopping = false;
let lastNewOk = 0;

function oneConnection(): Promise<void> {
  return new Promise((resolve) => {
    const started = performance.now();
    const nonce = `new-${started.toFixed(3)}-${Math.random().toString(36).slice(2)}`;
    let echoed = "";
    let done = false;
    const socket = connect({ host, port });
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const now = performance.now();
      if (error === undefined) {
        const p = phase();
        summary.newOk++;
        p.newOk++;
        summary.worstNewMs = Math.max(summary.worstNewMs, now - started);
        p.worstNewMs = Math.max(p.worstNewMs, now - started);
        if (lastNewOk !== 0) {
          summary.worstGapMs = Math.max(summary.worstGapMs, now - lastNewOk);
          p.worstGapMs = Math.max(p.worstGapMs, now - lastNewOk);
        }
        lastNewOk = now;
        if (p.newOk % 50 === 0) process.stdout.write(`ok ${p.newOk}\n`);
      } else {
        summary.newFailed.push(`${new Date().toISOString()} ${error}`);
      }
      resolve();
    };
    const timer = setTimeout(() => finish(`no echo within ${VERDICT_MS} ms`), VERDICT_MS);
    socket.on("connect", () => socket.write(nonce));
    socket.on("data", (b: Buffer) => {
      echoed += b.toString("utf8");
      if (echoed === nonce) finish();
    });
    socket.on("error", (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

async function newConnections(): Promise<void> {
  while (!stopping) {
    const next = performance.now() + interval;
    await oneConnection();
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

function heldConnection(): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host, port });
    let seq = 0;
    let expected = "";
    let got = "";
    let sentAt = 0;
    let timer: NodeJS.Timeout | undefined;
    const fail = (why: string): void => {
      summary.heldFailure ??= `${new Date().toISOString()} ${why}`;
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const send = (): void => {
      if (stopping) {
        socket.end();
        resolve();
        return;
      }
      expected = `held-${++seq};`;
      got = "";
      sentAt = performance.now();
      socket.write(expected);
      timer = setTimeout(() => fail(`message ${seq}: no echo within ${VERDICT_MS} ms`), VERDICT_MS);
    };
    socket.on("connect", send);
    socket.on("data", (b: Buffer) => {
      got += b.toString("utf8");
      if (got !== expected) return;
      clearTimeout(timer);
      summary.heldEchoes++;
      summary.worstHeldMs = Math.max(summary.worstHeldMs, performance.now() - sentAt);
      phase().worstHeldMs = Math.max(phase().worstHeldMs, performance.now() - sentAt);
      setTimeout(send, interval);
    });
    socket.on("error", (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
    socket.on("close", () => {
      if (!stopping) fail("closed by the peer");
    });
  });
}

process.stdin.setEncoding("utf8");
process.stdin.on("data", (text: string) => {
  for (const line of text.split("\n")) {
    if (line === "mark") summary.phases.push({ newOk: 0, worstNewMs: 0, worstGapMs: 0, worstHeldMs: 0 });
  }
});
const stopped = new Promise<void>((resolve) => process.stdin.on("end", resolve));
const held = heldConnection();
const fresh = newConnections();
// Ready once both kinds have succeeded once: the caller starts the restart only then.
const readyCheck = setInterval(() => {
  if (summary.newOk > 0 && summary.heldEchoes > 0) {
    clearInterval(readyCheck);
    process.stdout.write("ready\n");
  }
}, 5);
await stopped;
stopping = true;
clearInterval(readyCheck);
await Promise.all([held, fresh]);
process.stdout.write(`${JSON.stringify(summary)}\n`);
