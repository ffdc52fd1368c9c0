// The only reasons a test may skip: a kernel feature or a privilege this machine lacks. Tests build
// their skip message with `missing(...)`; scripts/check-test-run.ts fails a run with any other skip.
// This list is the one place that names them.

export const MISSING_FEATURES = ["802.1Q VLAN", "IPVS", "dummy links", "root", "mount namespaces"] as const;

export type MissingFeature = (typeof MISSING_FEATURES)[number];

/** The skip message for a missing feature: `missing: <feature>`, then what was seen, if anything. */
export function missing(feature: MissingFeature, detail?: string): string {
  return detail === undefined || detail === "" ? `missing: ${feature}` : `missing: ${feature} (${detail})`;
}

/** Whether a skip message names one of the features above (the feature, then nothing or a space). */
export function explainedSkip(message: unknown): MissingFeature | undefined {
  if (typeof message !== "string" || !message.startsWith("missing: ")) return undefined;
  const rest = message.slice("missing: ".length);
  return MISSING_FEATURES.find((f) => rest === f || rest.startsWith(`${f} `));
}
