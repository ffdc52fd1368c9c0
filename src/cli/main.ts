// Wiring only: each command lives in src/cli/commands/ and registers itself here.

import { Command } from "@commander-js/extra-typings";
import { registerPlanApplyDelete } from "./commands/core.ts";
import { registerExplain } from "./commands/explain.ts";
import { registerDoctor } from "./commands/doctor.ts";
import { registerLab } from "./commands/lab.ts";
import { registerAgent } from "./commands/agent.ts";
import { VERSION } from "./version.ts";

const program = new Command()
  .name("symroute")
  .description(
    "Routing for MetalLB L2 load-balancer addresses on their own subnet or VLAN.\n" +
      "Exit codes: 0 ok, 1 error, 2 changes pending (plan), 3 problems found (doctor).",
  )
  .version(VERSION)
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

registerPlanApplyDelete(program);
registerExplain(program);
registerDoctor(program);
registerLab(program);
registerAgent(program);

await program.parseAsync(process.argv);
