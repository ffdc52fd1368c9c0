import fc from "fast-check";
import { compileRoutingState } from "../../../src/simulate/compile.ts";
import { tracePacket } from "../../../src/simulate/trace.ts";
import { KernelLab } from "./kernel-lab.ts";
import { packetArb, stateArb, routeGetArgs } from "./random-state.ts";
const fam = Number(process.argv[2] ?? 4) as 4 | 6;
const [g] = fc.sample(stateArb(fam), { seed: 5, numRuns: 1 });
const packets = fc.sample(packetArb(fam), { seed: 9, numRuns: 8 });
const lab = await KernelLab.create("sr-simdbg");
try {
  await lab.writeSysctls(g!.sysctls); await lab.batch(fam, g!.lines);
  const st = await lab.readState();
  console.log(g!.lines.join("\n")); console.log(st.rules.length, st.routes.length, Object.keys(st.sysctls).length);
  const idx = compileRoutingState(st);
  const ans = await lab.routeGet(fam, packets);
  packets.forEach((p, i) => console.log(routeGetArgs(p).join(" "), "=>", JSON.stringify(ans[i]), "| sim:", JSON.stringify({ ...tracePacket(idx, p), rule: undefined, route: undefined })));
} finally { await lab.destroy(); }
