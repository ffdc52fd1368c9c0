// An apply that would move a network's mark value strands the connections open at that moment
// (src/plan/mark-moves.ts): refused, changing nothing, unless the caller accepts it (apply --force;
// the agent, which applies its file as written and logs plan's warning).

import { SymrouteError } from "../../model/errors.ts";
import { formatHex } from "../../model/marks.ts";
import { strandedConnectionsCommand } from "../../plan/mark-moves.ts";
import type { ApplyOptions, RoutingPlan } from "../types.ts";
import { counted } from "../../model/plural.ts";

export function refuseMarkMoves(rp: RoutingPlan, options: ApplyOptions): void {
  if (rp.markMoves === undefined || options.moveMarks === true) return;
  const { moves, oldMask } = rp.markMoves;
  throw new SymrouteError(
    "conflict",
    `the mark of ${counted(moves.length, "network")} would move: connections to their pools open now keep the old value in their ct mark, and their replies would no longer reach the network's table until they close`,
    {
      details: moves.map(
        (m) =>
          `network "${m.network}": ${formatHex(m.from)} -> ${formatHex(m.to)}; open connections: ${strandedConnectionsCommand(m, oldMask)}`,
      ),
      hint: "apply --force moves the marks anyway (new connections are not affected; apply --dry-run --force shows what it would run); or keep a marks.mask that covers the old values, or move at a quiet time",
    },
  );
}
