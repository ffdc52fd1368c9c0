import type { Command } from "@commander-js/extra-typings";

// Placeholder: filled in by the doctor work.
export function registerDoctor(_program: Command): void {}
