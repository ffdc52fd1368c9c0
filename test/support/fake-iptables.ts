// What the fake kernel checks of an `iptables-restore --noflush` payload before it takes it: the
// layout (a `*table` line first, `COMMIT` last), chains that exist, matches it knows; refused at
// the line iptables-restore names, and then nothing of the payload applies (it commits whole).

export class IptablesRefusal extends Error {
  constructor(
    /** The line iptables-restore names, counted from 1 (the line after the last for a missing COMMIT). */
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const BUILTIN = new Set(["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]);
const TARGETS = new Set(["ACCEPT", "DROP", "RETURN", "CONNMARK", "MARK", "SET", "LOG", "REJECT", "NOTRACK"]);
const MATCHES = new Set([
  "comment",
  "conntrack",
  "state",
  "rpfilter",
  "mark",
  "connmark",
  "set",
  "addrtype",
  "multiport",
  "tcp",
  "udp",
  "icmp",
  "icmp6",
]);

/**
 * Checks `payload` against the chains the table holds; returns the chains after it, or throws the
 * refusal.
 */
export function checkIptablesRestore(payload: string, before: ReadonlySet<string>): Set<string> {
  const chains = new Set(before);
  const lines = payload.split("\n");
  let table: string | undefined;
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1;
    const text = (lines[n] as string).trim();
    if (text === "" || text.startsWith("#")) continue;
    const refuse = (why: string): never => {
      throw new IptablesRefusal(line, `iptables-restore: line ${line} failed: ${why}`);
    };
    if (table === undefined) {
      if (!/^\*[a-z]+$/.test(text)) refuse("no table (*mangle) before it");
      table = text.slice(1);
      continue;
    }
    if (text === "COMMIT") {
      table = undefined;
      continue;
    }
    const words = text.split(/\s+/);
    const verb = words[0] as string;
    if (verb.startsWith(":")) {
      chains.add(verb.slice(1));
      continue;
    }
    const chain = words[1] ?? "";
    const known = (c: string): boolean => BUILTIN.has(c) || chains.has(c);
    if (verb === "-X") {
      if (!chains.has(chain)) refuse("No chain/target/match by that name.");
      chains.delete(chain);
      continue;
    }
    if (!["-A", "-I", "-D"].includes(verb)) refuse(`unknown command ${verb}`);
    if (!known(chain)) refuse("No chain/target/match by that name.");
    for (let i = 2; i < words.length; i++) {
      const w = words[i] as string;
      const next = words[i + 1] ?? "";
      if (w === "-m" && !MATCHES.has(next)) refuse(`Couldn't load match \`${next}'`);
      if ((w === "-j" && !TARGETS.has(next) && !known(next)) || (w === "-g" && !known(next)))
        refuse("No chain/target/match by that name.");
    }
  }
  if (table !== undefined)
    throw new IptablesRefusal(lines.length, `iptables-restore: COMMIT expected at line ${lines.length}`);
  return chains;
}
