// A network whose mark value changes (a new marks.mask leaves its saved value out) strands the
// connections open at that moment: conntrack keeps the old value in their ct mark, and the restore
// side, rewritten for the new values, no longer gives their replies the network's mark. Measured in
// test/cli/mark-move.e2e.test.ts: the replies of such a connection leave by main (the wrong gateway)
// until it closes. New connections get the new value and are not affected.

import { formatHex } from "../model/marks.ts";
import type { Allocations } from "./types.ts";

export interface MarkMove {
  readonly network: string;
  readonly from: number;
  readonly to: number;
  /** The network's table, which the stranded connections' replies no longer reach. */
  readonly table?: number;
  /** The network whose new value the old one matches under the new mask: its table takes them instead. */
  readonly takenBy?: string;
}

/** The networks present before and after whose mark value differs. */
export function markMoves(saved: Allocations, desired: Allocations, mask: number): MarkMove[] {
  // Indexed loops over the names: a thousand networks on every plan, under --lite-mode, where each
  // entry of Object.entries and each step of for...of allocates.
  const names = Object.keys(desired);
  const byValue = new Map<number, string>();
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const mark = desired[name]?.mark;
    if (mark !== undefined) byValue.set(mark, name);
  }
  const moves: MarkMove[] = [];
  for (let i = 0; i < names.length; i++) {
    const network = names[i] as string;
    const now = desired[network];
    if (now === undefined) continue;
    const from = saved[network]?.mark;
    if (from === undefined || now.mark === undefined || from === now.mark) continue;
    const takenBy = byValue.get((from & mask) >>> 0);
    moves.push({
      network,
      from,
      to: now.mark,
      ...(now.table === undefined ? {} : { table: now.table }),
      ...(takenBy === undefined ? {} : { takenBy }),
    });
  }
  return moves;
}

/** `conntrack -L -m VALUE/MASK`: the open connections that carry the old value. */
export function strandedConnectionsCommand(move: MarkMove, oldMask: number): string {
  return `conntrack -L -m ${formatHex(move.from)}/${formatHex(oldMask)}`;
}

/** plan's warning for one move: what happens to open connections, and what to do. */
export function markMoveWarning(move: MarkMove, mask: number, oldMask: number): string {
  const where =
    move.takenBy === undefined
      ? "leave by main (the node's default gateway, which an upstream router that checks sources drops)"
      : `are routed by network "${move.takenBy}"'s table (its value ${formatHex(move.from & mask)} matches under marks.mask ${formatHex(mask)})`;
  return (
    `network "${move.network}": its mark moves from ${formatHex(move.from)} to ${formatHex(move.to)} ` +
    `(marks.mask ${formatHex(mask)}): connections to its pools open now keep ${formatHex(move.from)} in ` +
    `their ct mark, so their replies no longer reach ${move.table === undefined ? "its table" : `table ${move.table}`} ` +
    `and ${where} until they close; new connections are not affected. ` +
    `List them with ${strandedConnectionsCommand(move, oldMask)}; apply refuses the move unless --force`
  );
}
