// Names that reach the kernel and other tools: interface names and network names.
// The rules are an allow-list, so a value that passes is safe in an argument, a comment and a log.

import { quoteString } from "./issues.ts";

const INTERFACE_CHAR = /^[A-Za-z0-9_.-]$/;
/** IFNAMSIZ (16) minus the terminating NUL. */
const INTERFACE_NAME_MAX = 15;
/** Like a Kubernetes DNS label: it ends up in rule comments, keys and file names. */
const NETWORK_NAME_MAX = 63;

// Character classes by code, for the loops below: they run for every network, and a loop over a
// short name costs less than compiling and running a regular expression once per command.
const isLowerOrDigit = (c: number): boolean => (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
const isInterfaceCode = (c: number): boolean =>
  isLowerOrDigit(c) || (c >= 65 && c <= 90) || c === 95 || c === 46 || c === 45;

/** Only A-Z a-z 0-9 _ . - (the INTERFACE_CHAR class, character by character). */
function hasOnlyInterfaceChars(name: string): boolean {
  for (let i = 0; i < name.length; i++) if (!isInterfaceCode(name.charCodeAt(i))) return false;
  return true;
}

/** ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ (NETWORK_NAME_PATTERN), for a non-empty name. */
function isNetworkName(name: string): boolean {
  const last = name.length - 1;
  if (!isLowerOrDigit(name.charCodeAt(0)) || !isLowerOrDigit(name.charCodeAt(last))) return false;
  for (let i = 1; i < last; i++) {
    const c = name.charCodeAt(i);
    if (!isLowerOrDigit(c) && c !== 45) return false;
  }
  return true;
}

export const INTERFACE_RULE =
  'allowed: 1 to 15 of the characters A-Z a-z 0-9 _ . -, not starting with \'-\', and not "." or ".."';
export const NETWORK_NAME_RULE =
  "allowed: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit";

/** Why `name` cannot be an interface name, or undefined when it can. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  // The usual name has only allowed characters: one test instead of one per character.
  if (!hasOnlyInterfaceChars(name)) {
    const problem = characterProblem(name);
    if (problem !== undefined) return problem;
  }
  if (name === "." || name === "..") return "is reserved by the kernel";
  if (name.startsWith("-")) return "starts with '-' (tools would read it as an option)";
  if (name.length > INTERFACE_NAME_MAX) {
    return `is ${name.length} characters long; the kernel allows at most ${INTERFACE_NAME_MAX}`;
  }
  return undefined;
}

/** What is wrong with the first character that cannot be in an interface name. */
function characterProblem(name: string): string | undefined {
  for (const ch of name) {
    if (INTERFACE_CHAR.test(ch)) continue;
    if (/\s/u.test(ch)) return "contains whitespace";
    if (/\p{Cc}/u.test(ch)) return "contains a control character";
    if (ch === "/") return "contains '/' (the kernel refuses it)";
    if (ch === ":") return "contains ':' (tools read it as an address label)";
    if (ch === '"' || ch === "'" || ch === "`") return "contains a quote";
    return `contains ${quoteString(ch)}, which symroute does not accept in interface names`;
  }
  return undefined;
}

export const isValidInterfaceName = (name: string): boolean => interfaceNameProblem(name) === undefined;

export function networkNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (name.length > NETWORK_NAME_MAX) return `is ${name.length} characters long`;
  if (!isNetworkName(name)) return "is not allowed";
  return undefined;
}
