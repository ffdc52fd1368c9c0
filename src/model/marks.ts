// Firewall marks: a value within a mask, as `ip rule ... fwmark VALUE/MASK` writes it.

interface Mark {
  readonly value: number;
  readonly mask: number;
}

export const formatHex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

export function popcount(n: number): number {
  let count = 0;
  for (let x = n >>> 0; x !== 0; x &= x - 1) count++;
  return count;
}

/** Spread the bits of `index` over the set bits of `mask`, lowest first (a "pdep"). */
export function markValueForIndex(index: number, mask: number): number | undefined {
  let value = 0;
  let rest = index;
  // Bit operations on the mask (the allocator asks this once per network); `rest` stays a plain
  // number, so any safe integer index is answered.
  for (let bit = 0; bit < 32 && rest !== 0; bit++) {
    if (((mask >>> bit) & 1) === 1) {
      if (rest % 2 === 1) value |= 1 << bit;
      rest = Math.floor(rest / 2);
    }
  }
  return rest === 0 ? value >>> 0 : undefined;
}

/** The index whose bits `markValueForIndex` spread over `mask`: the mark's bits under the mask, packed (a "pext"). */
export function markIndexOf(value: number, mask: number): number {
  let index = 0;
  let place = 1;
  for (let bit = 0; bit < 32; bit++) {
    if (((mask >>> bit) & 1) === 1) {
      if (((value >>> bit) & 1) === 1) index += place;
      place *= 2;
    }
  }
  return index;
}

/** Mark bits other components document as theirs (see docs/config.md). */
export const KNOWN_MARK_OWNERS: Readonly<Record<string, number>> = {
  "kube-proxy": 0x0000c000,
  calico: 0xffff0000,
  cilium: 0xffff0f00,
};
