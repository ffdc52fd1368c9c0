// Wiring only: each command lives in src/cli/commands/ and registers itself here. A run loads only
// the module of the command it runs (the agent's Kubernetes client alone costs more start-up time
// than a whole no-op apply); `--help` and unknown commands load them all.

import type { Command } from "@commander-js/extra-typings";
import { createProgram } from "./program.ts";

type Register = (program: Command) => void;

const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  plan: async () => (await import("./commands/core.ts")).registerPlanApplyDelete,
  apply: async () => (await import("./commands/core.ts")).registerPlanApplyDelete,
  delete: async () => (await import("./commands/core.ts")).registerPlanApplyDelete,
  explain: async () => (await import("./commands/explain.ts")).registerExplain,
  snapshot: async () => (await import("./commands/explain.ts")).registerExplain,
  doctor: async () => (await import("./commands/doctor.ts")).registerDoctor,
  lab: async () => (await import("./commands/lab.ts")).registerLab,
  agent: async () => (await import("./commands/agent.ts")).registerAgent,
};

const program = createProgram();

const wanted = process.argv[2];
// The version needs no command at all; help and unknown commands need them all.
const loaders =
  wanted === "--version" || wanted === "-V"
    ? []
    : wanted !== undefined && wanted in COMMANDS
      ? [COMMANDS[wanted]]
      : Object.values(COMMANDS);
const registered = new Set<Register>();
for (const load of loaders) {
  const register = await load?.();
  if (register === undefined || registered.has(register)) continue;
  registered.add(register);
  register(program);
}

// `symroute validate --help`, `symroute lab foo --help`: commander prints the parent's help and exits
// 0 for a command that does not exist, so a script probing for a command takes it for there. Without
// the help flag commander reports the unknown command (exit 1, with a suggestion when one is close).
function namesUnknownCommand(args: readonly string[]): boolean {
  let command: Command = program;
  for (const arg of args) {
    if (arg.startsWith("-") || command.commands.length === 0) return false;
    const sub = command.commands.find((c) => c.name() === arg);
    if (sub === undefined) return arg !== "help";
    command = sub as Command;
  }
  return false;
}
const args = process.argv.slice(2);
await program.parseAsync(
  namesUnknownCommand(args)
    ? [...process.argv.slice(0, 2), ...args.filter((arg) => arg !== "--help" && arg !== "-h")]
    : process.argv,
);
