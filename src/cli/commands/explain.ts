import type { Command } from "@commander-js/extra-typings";

// Placeholder: filled in by the explain work.
export function registerExplain(_program: Command): void {}
