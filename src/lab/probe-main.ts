// Entry point of the lab probe (see probe.ts): `ip netns exec NS node probe-main.js --listen tcp:8080`.

import { runProbe } from "./probe.ts";

runProbe(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`probe: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
