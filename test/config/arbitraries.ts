// fast-check generators for the configuration tests: valid Configs (built so every cross-field
// check passes), non-canonical spellings of them, and hostile values and text mutations.

import fc from "fast-check";
import { formatIp, formatPrefix, maskOf, parsePrefix, type Family } from "../../src/model/address.ts";
import type { Config, Method, NetworkConfig } from "../../src/config/schema.ts";
import { KNOWN_MARK_OWNERS, popcount } from "../../src/model/marks.ts";
import { FIREWALLS, KUBE_PROXY_MODES, METHODS, REGISTERED_ROUTE_PROTOCOLS } from "../../src/config/schema.ts";

const MAX_NETWORKS = 4;
const MAX_POOLS = 3;

/** A prefix inside `base/baseLen`, of length baseLen..max, host bits cleared. */
function prefixIn(family: Family, base: bigint, baseLen: number): fc.Arbitrary<string> {
  const bits = family === 4 ? 32 : 128;
  return fc
    .record({
      len: fc.integer({ min: baseLen, max: bits }),
      rest: fc.bigInt({ min: 0n, max: (1n << BigInt(bits - baseLen)) - 1n }),
    })
    .map(({ len, rest }) => formatPrefix({ family, value: (base | rest) & maskOf(family, len), len }));
}

/** Pools of network i, slot j: disjoint across (i, j) and from the pod CIDRs below. */
function pool(family: Family, i: number, j: number): fc.Arbitrary<string> {
  const slot = BigInt(i * MAX_POOLS + j);
  return family === 4
    ? prefixIn(4, (10n << 24n) | (slot << 16n), 16) // 10.slot.0.0/16
    : prefixIn(6, (0x20010db8n << 96n) | (slot << 80n), 48); // 2001:db8:slot::/48
}

const podCidr = fc.oneof(
  prefixIn(4, (100n << 24n) | (64n << 16n), 10), // 100.64.0.0/10
  prefixIn(6, 0xfd00n << 112n, 16), // fd00::/16
);

const gatewayOf = (family: Family): fc.Arbitrary<string> =>
  family === 4
    ? fc.integer({ min: 1, max: 0xfffe }).map((n) => formatIp(4, (172n << 24n) | (16n << 16n) | BigInt(n)))
    : fc.bigInt({ min: 1n, max: 0xffffn }).map((n) => formatIp(6, (0x20010db8ffffn << 80n) | n));

// Built from character lists: fc.stringMatching is two orders of magnitude slower here.
const LOWER_ALNUM = [..."abcdefghijklmnopqrstuvwxyz0123456789"];
const IF_FIRST = [...LOWER_ALNUM, ..."ABCDEFGHIJKLMNOPQRSTUVWXYZ_"];

/** ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ */
export const networkName = fc
  .tuple(
    fc.constantFrom(...LOWER_ALNUM),
    fc.option(
      fc.tuple(
        fc.array(fc.constantFrom(...LOWER_ALNUM, "-"), { maxLength: 12 }),
        fc.constantFrom(...LOWER_ALNUM),
      ),
      {
        nil: undefined,
      },
    ),
  )
  .map(([first, rest]) => (rest === undefined ? first : `${first}${rest[0].join("")}${rest[1]}`));

/** ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$ */
export const interfaceName = fc
  .tuple(fc.constantFrom(...IF_FIRST), fc.array(fc.constantFrom(...IF_FIRST, ".", "-"), { maxLength: 14 }))
  .map(([first, rest]) => `${first}${rest.join("")}`);

function network(
  i: number,
  name: string,
  ifname: string,
  parent: string,
  table: number,
): fc.Arbitrary<NetworkConfig> {
  return fc
    .record({
      families: fc.constantFrom<Family[]>([4], [6], [4, 6]),
      method: fc.constantFrom<Method>(...METHODS),
      vlanId: fc.option(fc.integer({ min: 1, max: 999 }), { nil: undefined }),
      withTable: fc.boolean(),
      optionalGateways: fc.record({ 4: fc.boolean(), 6: fc.boolean() }),
    })
    .chain(({ families, method, vlanId, withTable, optionalGateways }) => {
      const poolArbs = families.flatMap((family) =>
        [0, 1, 2].map((j) => fc.option(pool(family, i, j), { nil: undefined })),
      );
      const needsGateway = method === "source" || method === "connmark";
      const gatewayArbs = families.map((family) =>
        needsGateway || optionalGateways[family] ? gatewayOf(family) : fc.constant(undefined),
      );
      return fc.tuple(fc.tuple(...poolArbs), fc.tuple(...gatewayArbs)).map(([pools, gws]): NetworkConfig => {
        const addresses = pools.filter((p): p is string => p !== undefined);
        // At least one pool per family chosen, so a gateway always has a pool of its family.
        families.forEach((family, k) => {
          if (!addresses.some((a) => parsePrefix(a)?.family === family)) {
            addresses.push(
              formatPrefix({
                family,
                value:
                  (family === 4 ? 10n << 24n : 0x20010db8n << 96n) |
                  (BigInt(i * MAX_POOLS + 2) << (family === 4 ? 16n : 80n)) |
                  BigInt(k + 1),
                len: family === 4 ? 32 : 128,
              }),
            );
          }
        });
        const gateways: Partial<Record<Family, string>> = {};
        families.forEach((family, k) => {
          const gw = gws[k];
          if (gw !== undefined) gateways[family] = gw;
        });
        return {
          name,
          addresses,
          interface: ifname,
          gateways,
          ...(vlanId === undefined ? {} : { vlan: { parent, id: i * 1000 + vlanId } }),
          ...(withTable ? { table } : {}),
          method,
        };
      });
    });
}

const ownerNames = Object.keys(KNOWN_MARK_OWNERS);

export const validConfig: fc.Arbitrary<Config> = fc
  .record({
    names: fc.uniqueArray(networkName, { minLength: 0, maxLength: MAX_NETWORKS }),
    ifnames: fc.uniqueArray(
      interfaceName.filter((s) => s !== "." && s !== ".." && !s.startsWith("-")),
      {
        minLength: MAX_NETWORKS * 2,
        maxLength: MAX_NETWORKS * 2,
      },
    ),
    tables: fc.uniqueArray(fc.integer({ min: 256, max: 100_000 }), {
      minLength: MAX_NETWORKS,
      maxLength: MAX_NETWORKS,
    }),
  })
  .chain(({ names, ifnames, tables }) =>
    fc.record({
      podCIDRs: fc.array(podCidr, { maxLength: 3 }),
      networks: fc.tuple(
        ...names.map((name, i) =>
          network(i, name, ifnames[i] ?? "eth0", ifnames[MAX_NETWORKS + i] ?? "eth9", tables[i] ?? 300 + i),
        ),
      ),
      firewall: fc.constantFrom(...FIREWALLS),
      kubeProxyMode: fc.constantFrom(...KUBE_PROXY_MODES),
      rulePriorities: fc
        .tuple(fc.integer({ min: 1, max: 32764 }), fc.integer({ min: 1, max: 32765 }))
        .map(([a, b]) => ({ from: Math.min(a, b), to: Math.max(a, b, Math.min(a, b) + 1) })),
      tables: fc
        .oneof(
          fc.tuple(fc.integer({ min: 1, max: 248 }), fc.integer({ min: 4, max: 252 })),
          fc.tuple(fc.integer({ min: 256, max: 4294967291 }), fc.integer({ min: 4, max: 4294967295 })),
        )
        .map(([from, size]) => ({ from, to: Math.min(from + size, from < 253 ? 252 : 4294967295) })),
      marks: fc
        .record({ avoid: fc.subarray(ownerNames), mask: fc.integer({ min: 1, max: 0xffffffff }) })
        .map(({ avoid, mask }) => {
          const taken = avoid.reduce((bits, name) => bits | (KNOWN_MARK_OWNERS[name] ?? 0), 0);
          let clear = (mask & ~taken) >>> 0;
          if (popcount(clear) < 3) clear = (clear | 0x7) >>> 0;
          return { mask: clear, avoid };
        }),
      routeProtocol: fc
        .integer({ min: 5, max: 255 })
        .filter((p) => REGISTERED_ROUTE_PROTOCOLS[p] === undefined),
      stateDir: fc.option(
        fc
          .array(
            fc
              .array(fc.constantFrom(...LOWER_ALNUM, "_", "-"), { minLength: 1, maxLength: 8 })
              .map((cs) => cs.join("")),
            {
              maxLength: 4,
            },
          )
          .map((parts) => `/${parts.join("/")}`),
        { nil: undefined },
      ),
    }),
  )
  .map(({ stateDir, networks, ...rest }): Config => ({
    ...rest,
    // method source is refused when kube-proxy DNATs (iptables, nftables): connmark needs the same.
    networks:
      rest.kubeProxyMode === "iptables" || rest.kubeProxyMode === "nftables"
        ? networks.map((n) => (n.method === "source" ? { ...n, method: "connmark" } : n))
        : networks,
    ...(stateDir === undefined ? {} : { stateDir }),
  }));

/** Another spelling of a canonical prefix or address that must canonicalise back to it. */
export function respell(text: string, variant: number, isGateway = false): string {
  const prefix = parsePrefix(text);
  if (prefix === undefined) return text;
  const full = prefix.family === 4 ? 32 : 128;
  const withLength =
    !isGateway && variant % 2 === 0 && prefix.len === full && !text.includes("/") ? `${text}/${full}` : text;
  if (prefix.family === 6 && variant % 3 === 0) {
    // Fully expanded, upper case: 2001:0DB8:0000:...
    const words: string[] = [];
    for (let k = 7; k >= 0; k--)
      words.push(((prefix.value >> BigInt(k * 16)) & 0xffffn).toString(16).padStart(4, "0"));
    const addr = words.join(":").toUpperCase();
    return withLength.includes("/") ? `${addr}/${withLength.split("/")[1]}` : addr;
  }
  return withLength;
}

/** Values that must never get through, in every field. */
export const hostileString = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "\n",
    "eth0\n",
    "eth 0",
    "eth0;reboot",
    "$(reboot)",
    "`id`",
    "eth0'",
    'eth0"',
    "a".repeat(300),
    "eth\u202e0",
    "eth\u200d0",
    "eth\u200b0",
    "e\u0301th0",
    "\ufeffeth0",
    "eth\u00000",
    "\u001b[31meth0",
    "eth0:1",
    "eth/0",
    ".",
    "..",
    "-eth0",
    "ｅｔｈ０",
    "1.2.3.4/24",
    "::1.2.3.4",
    "0xff",
    "1e400",
  ),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
);

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.constantFrom(-1, 0, 1.5, 4095, 65536, 2 ** 32, 2 ** 53 + 2, -(2 ** 31), 1e300, true, false, null),
  fc.double(),
  fc.integer(),
  fc.array(hostileString, { maxLength: 3 }),
  fc.dictionary(hostileString, hostileString, { maxKeys: 3 }),
);

/** Fragments that break YAML, quoting or shells when inserted anywhere in a file. */
export const hostileFragment = fc.constantFrom(
  "\n",
  " ",
  "\t",
  "'",
  '"',
  ";",
  "$(reboot)",
  "`id`",
  "a".repeat(40),
  "\u202e",
  "\u200b",
  "\u0301",
  "\ufeff",
  "\u0000",
  "\u001b",
  "1e400",
  "-1",
  "99999999999999999999",
  "{",
  "[",
  "- ",
  ": ",
  "&a ",
  "*a",
  "!!binary ",
  "!x ",
  "~",
  "<<: ",
  "---\n",
  "#",
  "\r\n",
  "\u2028",
);
