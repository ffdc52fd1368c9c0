// Counted nouns in messages: "1 rule", "2 rules", never "1 rules" or "rule(s)".

/** `one` for exactly one, else `many`: the word that agrees with a count ("is" or "are"). */
export const agreeing = (n: number, one: string, many: string): string => (n === 1 ? one : many);

/** `n` and the noun, singular for exactly one (`many` for irregular plurals). */
export const counted = (n: number, one: string, many = `${one}s`): string => `${n} ${agreeing(n, one, many)}`;
