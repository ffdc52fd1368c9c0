// Imported first, for its side effect: by bin/symroute before the CLI bundle's main module (a
// separate entry of the bundle, so that nothing else has to load before it), and by main.ts.
// The node's reads start here (see early-read.ts); a second import does nothing.

import { startEarlyRead } from "./early-read.ts";

startEarlyRead(process.argv[2], process.argv.slice(3));
