// Kubernetes label selectors (matchLabels and matchExpressions), evaluated against a label map.

interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: string;
  readonly values?: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

export type Labels = Readonly<Record<string, string>>;

type SelectorResult = { readonly matches: boolean; readonly problem?: string };

/** An absent selector and an empty one both match everything, as in Kubernetes. */
export function matchSelector(selector: LabelSelector | undefined, labels: Labels): SelectorResult {
  if (selector === undefined || selector === null) return { matches: true };
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return { matches: false };
  }
  for (const requirement of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, requirement.key);
    const value = labels[requirement.key];
    const values = requirement.values ?? [];
    switch (requirement.operator) {
      case "In":
        if (!has || value === undefined || !values.includes(value)) return { matches: false };
        break;
      case "NotIn":
        if (has && value !== undefined && values.includes(value)) return { matches: false };
        break;
      case "Exists":
        if (!has) return { matches: false };
        break;
      case "DoesNotExist":
        if (has) return { matches: false };
        break;
      default:
        return {
          matches: false,
          problem: `label selector operator ${JSON.stringify(requirement.operator)} is not In, NotIn, Exists or DoesNotExist`,
        };
    }
  }
  return { matches: true };
}
