// The state file's shape (src/engine/ports.ts, SavedState), checked when it is read: a file edited by
// hand or cut short is refused with the field that is wrong, before anything is changed. Its values
// reach the kernel (sysctl paths under /proc/sys, links deleted, firewall rules rendered), so names
// and addresses are held to what symroute writes. Fields optional today are optional here, since
// older files lack them (freedAllocations, baselineUnknown, guards...), and keys this version does
// not know are kept as they are: a file a newer symroute wrote still loads.

import { z } from "zod";
import { parsePrefix } from "../model/address.ts";
import { describe, formatPath, quoteString } from "./issues.ts";
import { INTERFACE_RULE, interfaceNameProblem } from "./names.ts";

/** What a field must be, and what it is: the message of every issue below. */
const must =
  (what: string) =>
  (iss: { input?: unknown }): string =>
    iss.input === undefined ? `is missing; must be ${what}` : `must be ${what}; got ${describe(iss.input)}`;

const integer = (what: string, min: number, max: number) =>
  z
    .int({ error: must(what) })
    .min(min, { error: must(what) })
    .max(max, { error: must(what) });

const text = (what: string) => z.string({ error: must(what) });

const list = <T extends z.ZodType>(element: T, what: string) => z.array(element, { error: must(what) });

const mapping = <S extends z.core.$ZodLooseShape>(shape: S, what: string) =>
  z.looseObject(shape, { error: must(what) });

const interfaceName = text("an interface name").check(
  z.refine((name: string) => interfaceNameProblem(name) === undefined, {
    error: (iss) => `interface name ${quoteString(String(iss.input))} is not allowed; ${INTERFACE_RULE}`,
  }),
);

const prefix = text("a prefix such as 1.2.3.0/24").check(
  z.refine((p: string) => parsePrefix(p) !== undefined, {
    error: (iss) => `must be a prefix such as 1.2.3.0/24; got ${describe(iss.input)}`,
  }),
);

const family = z.union([z.literal(4), z.literal(6)], { error: must("4 or 6") });
/** A built-in chain of iptables' mangle table in a family, as `4:PREROUTING`. */
const builtinChain = text('a chain such as "4:PREROUTING"').regex(
  /^[46]:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/,
  { error: must('a family and a built-in chain, such as "4:PREROUTING"') },
);
const backend = z.enum(["nftables", "iptables"], { error: must('"nftables" or "iptables"') });
const UINT32_MAX = 4294967295;

/**
 * A sysctl of symroute's in path form (net/ipv4/conf/IFACE/NAME, as written under /proc/sys): never
 * a path that leaves that directory. IFACE is any name the kernel gives a link (dev_valid_name: 1 to
 * 15 bytes, no '/', ':' or whitespace, not "." or ".."), not only one the config allows: when symroute
 * lowers conf.all's rp_filter it records that of every link on the node (plan/sysctls.ts).
 */
const SYSCTL_NAME = /^net\/ipv[46]\/conf\/([^/:\s]{1,15})\/[a-z0-9_]{1,64}$/u;
const sysctlName = text("a sysctl name").check(
  z.refine(
    (name: string) => {
      const iface = SYSCTL_NAME.exec(name)?.[1];
      return iface !== undefined && iface !== "." && iface !== "..";
    },
    {
      error: (iss) =>
        `sysctl name ${quoteString(String(iss.input))} is not one of symroute's (net/ipv4/conf/INTERFACE/NAME, as under /proc/sys)`,
    },
  ),
);

const allocation = mapping(
  {
    table: integer("a table number from 1 to 4294967295", 1, UINT32_MAX).optional(),
    mark: integer("a mark value from 1 to 4294967295", 1, UINT32_MAX).optional(),
  },
  "a mapping of table and mark",
);
const allocations = z.record(z.string(), allocation, { error: must("a mapping of network names") });

const markEntry = mapping(
  {
    network: text("a network name"),
    family,
    iif: interfaceName,
    pools: list(prefix, "a list of prefixes"),
    value: integer("a mark value from 1 to 4294967295", 1, UINT32_MAX),
  },
  "a mapping",
);

const spoofGuard = mapping(
  {
    family,
    iif: interfaceName,
    mode: z.enum(["strict", "loose"], { error: must('"strict" or "loose"') }),
    exempt: list(prefix, "a list of prefixes"),
    reason: text("a text"),
  },
  "a mapping",
);

const arpProbe = mapping(
  { oif: interfaceName, targets: list(prefix, "a list of prefixes"), reason: text("a text") },
  "a mapping",
);

const firewallSpec = mapping(
  {
    backend,
    mask: integer("a mark mask from 1 to 4294967295", 1, UINT32_MAX),
    entries: list(markEntry, "a list"),
    guards: list(spoofGuard, "a list").optional(),
    arpProbes: list(arpProbe, "a list").optional(),
  },
  "a mapping",
);

const band = mapping(
  {
    from: integer("a rule priority from 1 to 32765", 1, 32765),
    to: integer("a rule priority from 1 to 32765", 1, 32765),
  },
  "a mapping of from and to",
);

const routeProtocol = integer("a route protocol from 0 to 255", 0, 255);

export const savedStateSchema = mapping(
  {
    version: z.literal(1, {
      error: (iss) => `must be 1 (the only version there is); got ${describe(iss.input)}`,
    }),
    previousSysctls: z.record(
      sysctlName,
      text('a sysctl value as text, such as "1"').regex(/^-?[0-9]+$/, {
        error: must('an integer as text, such as "1"'),
      }),
      {
        error: must("a mapping of sysctl names to values"),
      },
    ),
    allocations,
    freedAllocations: allocations.optional(),
    createdLinks: list(interfaceName, "a list of interface names"),
    firewall: backend.optional(),
    firewallSpec: firewallSpec.optional(),
    firewallContents: mapping(
      {
        nftables: list(z.string({ error: must("a text") }), "a list of rules").optional(),
        iptables: list(z.string({ error: must("a text") }), "a list of rules").optional(),
      },
      "a mapping of nftables and iptables",
    ).optional(),
    iptablesTablesCreated: list(family, "a list of 4 and 6").optional(),
    iptablesTablesCreating: list(family, "a list of 4 and 6").optional(),
    iptablesChainsCreated: list(builtinChain, 'a list of chains such as "4:PREROUTING"').optional(),
    iptablesChainsCreating: list(builtinChain, 'a list of chains such as "4:PREROUTING"').optional(),
    rulePriorities: band.optional(),
    routeProtocol: routeProtocol.optional(),
    formerRouteProtocols: list(routeProtocol, "a list of route protocols").optional(),
    inProgress: z.boolean({ error: must("true or false") }).optional(),
    baselineUnknown: list(
      z.enum(["previousSysctls", "createdLinks", "iptablesTablesCreated"], {
        error: must('"previousSysctls", "createdLinks" or "iptablesTablesCreated"'),
      }),
      "a list of field names",
    ).optional(),
  },
  "a mapping (a JSON object)",
);

export type SavedStateShape = z.output<typeof savedStateSchema>;

/** A state file's text checked: the state, or each problem as `field: what is wrong` (the first first). */
export function parseSavedState(
  textOfFile: string,
): { ok: true; state: SavedStateShape } | { ok: false; problems: string[] } {
  let value: unknown;
  try {
    value = JSON.parse(textOfFile);
  } catch (cause) {
    return {
      ok: false,
      problems: [
        `not JSON (${(cause as Error).message}): cut short (a full disk, a copy interrupted) or edited by hand`,
      ],
    };
  }
  const result = savedStateSchema.safeParse(value);
  if (result.success) return { ok: true, state: result.data };
  return {
    ok: false,
    problems: result.error.issues.map((issue) => {
      const field = formatPath(issue.path as (string | number)[]);
      // A record's key that its key schema refuses: that schema says why.
      const message =
        issue.code === "invalid_key" ? (issue.issues[0]?.message ?? issue.message) : issue.message;
      return field === "" ? `the file ${message}` : `${field}: ${message}`;
    }),
  };
}
