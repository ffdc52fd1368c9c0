// The top-level command every entry of the CLI builds: name, help, version, error behaviour.

import { Command } from "@commander-js/extra-typings";
import pc from "picocolors";
import { VERSION } from "./version.ts";

/**
 * Whether a command line asks for JSON output (`-o json`, `-ojson`, `--output json`,
 * `--output=json`). Read before commander parses it: a usage error (a missing `-c`, an unknown
 * flag) happens before any option has a value, and a script reading `-o json` must still get JSON.
 */
export function wantsJson(argv: readonly string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") return false;
    if ((arg === "-o" || arg === "--output") && argv[i + 1] === "json") return true;
    if (arg === "-ojson" || arg === "--output=json") return true;
  }
  return false;
}

/**
 * What a usage error says to do next: commander's suggestion ("(Did you mean plan?)") and any line
 * of ours after its message, then the help of the command the line names. `text` is commander's
 * message ("error: ...\n", maybe with more lines); `command` the command's path (`plan`, `lab up`).
 */
function usageError(text: string, command: string | undefined): { message: string; hint: string } {
  const lines = text
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  // Commander puts "option '--case <n>' argument '7' is invalid." before the message of our
  // parsers, which name the option and the value themselves.
  const message = (lines[0] ?? "usage error")
    .replace(/^error: /, "")
    .replace(/^option '[^']*' argument '.*' is invalid\. (?=--)/, "");
  const suggestion = lines
    .slice(1)
    .map((l) => l.replace(/^\((.*)\)$/, "$1"))
    .join(" ");
  const help = `symroute ${command === undefined ? "" : `${command} `}--help`;
  return { message, hint: suggestion === "" ? `see \`${help}\`` : `${suggestion} (see \`${help}\`)` };
}

/**
 * A usage error as `-o json` reports every error: `{"error": {kind, message, details, hint}}` on
 * stdout, kind `invalid-argument`.
 */
export function usageErrorJson(text: string, command: string | undefined): string {
  const { message, hint } = usageError(text, command);
  return `${JSON.stringify({ error: { kind: "invalid-argument", message, details: [], hint } }, null, 2)}\n`;
}

/**
 * A usage error as text, as every other error prints (output.ts, reportError): the problem with its
 * kind on one line and the next step on another; not the command's whole help, which buried the
 * one line that mattered.
 */
export function usageErrorText(text: string, command: string | undefined): string {
  const { message, hint } = usageError(text, command);
  return `${pc.red("error")} (invalid-argument): ${message}\n${pc.dim("hint:")} ${hint}\n`;
}

export function createProgram(argv: readonly string[] = process.argv): Command {
  const program = new Command()
    .name("symroute")
    .description("Routing for MetalLB L2 load-balancer addresses on their own subnet or VLAN.")
    .addHelpText(
      "after",
      "\nExit codes: 0 ok, 1 error, 2 changes pending (plan), 3 problems found (doctor) or a verdict the simulator does not model (explain), 4 conflicts with objects symroute does not own (plan, apply).\nRun a command in another network namespace with `ip netns exec NAME symroute ...`.",
    )
    .version(VERSION)
    .configureHelp({ sortSubcommands: false });
  const args = argv.slice(2);
  // The command the line names, with its subcommand (`lab up`), read when an error is reported:
  // every command is registered then.
  const commandNamed = (): string | undefined => {
    const at = args.findIndex((a) => program.commands.some((c) => c.name() === a));
    if (at === -1) return undefined;
    const command = program.commands.find((c) => c.name() === args[at]);
    const sub = args
      .slice(at + 1)
      .find((a) => command?.commands.some((c) => c.name() === a && c.name() !== "help"));
    return sub === undefined ? args[at] : `${args[at]} ${sub}`;
  };
  /**
   * `symroute --state-dir DIR plan`: the option belongs to the command and goes after it. Commander
   * says only "unknown option"; say where it goes when the command named has it.
   */
  const misplaced = (text: string): string => {
    const flag = /unknown option '([^'=]+)/.exec(text)?.[1];
    const command = commandNamed()?.split(" ")[0];
    if (flag === undefined || !(args[0] ?? "").startsWith("-") || command === undefined) return "";
    const owner = program.commands.find(
      (c) => c.name() === command && c.options.some((o) => o.long === flag || o.short === flag),
    );
    return owner === undefined ? "" : `(options go after the command: symroute ${command} ${flag} ...)\n`;
  };
  if (wantsJson(args)) {
    // Subcommands inherit this: their usage errors become the JSON error body, and help commander
    // writes as an error (`symroute lab` without its subcommand) is left out of stdout's one document.
    program.configureOutput({
      writeErr: () => {},
      outputError: (text) => process.stdout.write(usageErrorJson(text + misplaced(text), commandNamed())),
    });
  } else
    program.configureOutput({
      outputError: (text, write) => write(usageErrorText(text + misplaced(text), commandNamed())),
    });
  return program;
}
