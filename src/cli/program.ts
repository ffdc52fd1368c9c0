// The top-level command every entry of the CLI builds: name, help, version, error behaviour.

import { Command } from "@commander-js/extra-typings";
import { VERSION } from "./version.ts";

export function createProgram(): Command {
  return new Command()
    .name("symroute")
    .description("Routing for MetalLB L2 load-balancer addresses on their own subnet or VLAN.")
    .addHelpText(
      "after",
      "\nExit codes: 0 ok, 1 error, 2 changes pending (plan), 3 problems found (doctor) or a verdict the simulator does not model (explain), 4 conflicts with objects symroute does not own (plan, apply).\nRun a command in another network namespace with `ip netns exec NAME symroute ...`.",
    )
    .version(VERSION)
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: false });
}
