import type { Command } from "@commander-js/extra-typings";

// Placeholder: filled in by the lab work.
export function registerLab(_program: Command): void {}
