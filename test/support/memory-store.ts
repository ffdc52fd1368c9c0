// A StateStore in memory, with the same lock semantics as the state file.

import { SymrouteError } from "../../src/model/errors.ts";
import type { SavedState, StateStore } from "../../src/engine/ports.ts";

export class MemoryStore implements StateStore {
  state: SavedState | undefined;
  locked = false;
  failWrite = false;
  readonly location = "memory";

  async read(): Promise<SavedState | undefined> {
    return this.state === undefined ? undefined : structuredClone(this.state);
  }
  async write(state: SavedState): Promise<void> {
    if (this.failWrite)
      throw new SymrouteError("kernel", "cannot write the state file memory: ENOSPC", {
        hint: "the disk is full",
      });
    this.state = structuredClone(state);
  }
  async remove(): Promise<void> {
    this.state = undefined;
  }
  async lock(): Promise<() => Promise<void>> {
    if (this.locked) throw new SymrouteError("busy", "another symroute is changing this network namespace");
    this.locked = true;
    return async () => {
      this.locked = false;
    };
  }
}
