// A MetalLB range where a CIDR belongs (MetalLB's IPAddressPool writes pools as FIRST-LAST, and
// users paste them): the message gives the CIDRs that cover it, ready to write instead.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseConfigText } from "../../src/config/index.ts";
import { rangePrefixes } from "../../src/model/address.ts";

function messages(addresses: string): string[] {
  const result = parseConfigText(`networks:\n  - {name: lan, addresses: ${addresses}, interface: eth0}\n`);
  assert.equal(result.ok, false);
  return result.ok ? [] : result.issues.map((i) => i.message);
}

test("a range names the CIDRs that cover it (the range of examples/case1-same-subnet.yaml)", () => {
  assert.deepEqual(messages('["192.168.1.100-192.168.1.120", "2001:db8::10 - 2001:db8::1f"]'), [
    'address "192.168.1.100-192.168.1.120" is a range (MetalLB\'s form), not a CIDR; write the CIDRs that cover it instead: [192.168.1.100/30, 192.168.1.104/29, 192.168.1.112/29, 192.168.1.120]',
    'address "2001:db8::10 - 2001:db8::1f" is a range (MetalLB\'s form), not a CIDR; write the CIDRs that cover it instead: [2001:db8::10/124]',
  ]);
});

test("what is not a range of one family in order keeps the plain message", () => {
  for (const text of ["10.0.0.9-10.0.0.1", "10.0.0.1-2001:db8::1", "a-b", "10.0.0.1-"])
    assert.match(messages(JSON.stringify([text]))[0] ?? "", /is not an IP address or CIDR/, text);
});

test("rangePrefixes covers the range exactly with aligned blocks, never more than 2*bits of them (property; the agent's MetalLB pool reader uses it too)", () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 0xffffffffn }),
      fc.bigInt({ min: 0n, max: 0xffffffffn }),
      (a, b) => {
        const [first, last] = a <= b ? [a, b] : [b, a];
        const prefixes = rangePrefixes(4, first, last);
        assert.ok(prefixes.length <= 62);
        let next = first;
        for (const p of prefixes) {
          assert.equal(p.value, next, "contiguous, in order");
          const size = 1n << BigInt(32 - p.len);
          assert.equal(p.value % size, 0n, "aligned");
          next = p.value + size;
        }
        assert.equal(next, last + 1n, "ends at the range's end");
      },
    ),
    { numRuns: 2000 },
  );
});
