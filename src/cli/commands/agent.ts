import type { Command } from "@commander-js/extra-typings";

// Placeholder: filled in by the agent work.
export function registerAgent(_program: Command): void {}
