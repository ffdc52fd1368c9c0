// Counted nouns in messages: "1 rule", "2 rules", never "1 rules" or "rule(s)".

/** `n` and the noun, singular for exactly one (`many` for irregular plurals). */
export const counted = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;
