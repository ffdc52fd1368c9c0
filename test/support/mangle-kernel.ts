// The fake node with iptables' mangle tables as iptables-nft keeps them (made by the first restore
// of a family, dropped by symroute only when empty), and a crash that can stop a run after any
// payload: from then on the node takes nothing and the state file keeps what it held, as after a
// SIGKILL.

import type { Family } from "../../src/model/address.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import { FakeKernel } from "./fake-kernel.ts";
import { MemoryStore } from "./memory-store.ts";

const crashError = (): Error => new Error("crash (simulated): the process is gone");

export class MangleKernel extends FakeKernel {
  /** The families whose mangle table is there. */
  readonly mangle = new Set<Family>();
  /** Families whose mangle table holds another tool's chains (kube-proxy's): never empty. */
  readonly foreignChains = new Set<Family>();
  /**
   * The step after which the run crashes (`iptables4`, `nft`, ...; see FakeKernel's steps), or
   * `drop4`/`drop6`: the run crashes just before the clean-up drops that family's mangle table.
   */
  crashAfter: string | undefined;
  /** Whether the run crashed: nothing reaches the node any more. */
  crashed = false;

  /** Crashes the run once `step` ran. */
  private ran(step: string): void {
    if (this.crashAfter !== step) return;
    this.crashed = true;
    throw crashError();
  }

  /** After a crash, the next run: the node takes payloads again. */
  restart(): void {
    this.crashAfter = undefined;
    this.crashed = false;
    this.faults = {};
  }

  override async iptablesMangleExists(family: Family): Promise<boolean> {
    return this.mangle.has(family);
  }
  override async runIptablesRestore(family: Family, payload: string): Promise<void> {
    if (this.crashed) throw crashError();
    await super.runIptablesRestore(family, payload);
    this.mangle.add(family);
    this.ran(`iptables${family}`);
  }
  override async runNft(script: string): Promise<void> {
    if (this.crashed) throw crashError();
    await super.runNft(script);
    this.ran("nft");
  }
  override async runIpBatch(family: Family, lines: readonly string[]): Promise<void> {
    if (this.crashed) throw crashError();
    await super.runIpBatch(family, lines);
    this.ran(`ip${family}`);
  }
  override async runIpsetRestore(payload: string): Promise<void> {
    if (this.crashed) throw crashError();
    await super.runIpsetRestore(payload);
    this.ran("ipset");
  }
  override async writeSysctls(values: readonly (readonly [string, string])[]): Promise<void> {
    if (this.crashed) throw crashError();
    await super.writeSysctls(values);
  }
  override async dropEmptyIptablesMangle(family: Family): Promise<void> {
    if (this.crashed) throw crashError();
    this.ran(`drop${family}`);
    const keys = this.state.firewall.filter((f) => f.backend === "iptables").flatMap((f) => f.ruleKeys);
    if (!this.foreignChains.has(family) && !keys.some((k) => k.startsWith(`${family}:`)))
      this.mangle.delete(family);
  }
}

/** A state file that takes no write once `kernel` crashed (the process is gone). */
export class CrashingStore extends MemoryStore {
  constructor(private readonly kernel: MangleKernel) {
    super();
  }
  override async write(state: SavedState): Promise<void> {
    if (this.kernel.crashed) throw crashError();
    await super.write(state);
  }
  override async remove(): Promise<void> {
    if (this.kernel.crashed) throw crashError();
    await super.remove();
  }
}
