// The entry of plan, apply and delete, the commands a node runs most (bin/symroute picks it by the
// command's name). `make build` bundles it into one CommonJS file, dist/bundle/core.cjs, that
// bin/symroute compiles with V8's code cache: one file and no module graph to resolve, which
// measured faster to start than the split ESM bundle the other commands load.

import "./early-start.ts";
import { registerPlanApplyDelete } from "./commands/core.ts";
import { createProgram } from "./program.ts";

const program = createProgram();
registerPlanApplyDelete(program);
void program.parseAsync(process.argv);
