/**
 * Authorization of the control plane: which authenticated identity may act on which functions of
 * which host. A policy file can be shared by every host; each server evaluates it for its own
 * `host` name.
 *
 *   { "host": "host-a",
 *     "rules": [ { "identity": "orchestrator", "hosts": "*",        "functions": "*" },
 *                { "identity": "tenant-7",     "hosts": ["host-a"], "functions": [3, 4] } ] }
 *
 * - A rule applies when its identity equals the caller's and its `hosts` is "*" or names this host.
 * - The allowed functions are the union over applicable rules; "*" = every function (incl. the PF).
 * - An identity with no applicable rule is denied everything, even ListFunctions.
 * - Identities are exact strings (no wildcards). Function selectors are CNTLIDs.
 */
import { z } from "zod";
import { ControlError } from "./errors.ts";
import { MAX_CNTLID } from "./limits.ts";

export interface AuthzRule {
  /** Authenticated identity (see identity.ts) this rule is for. */
  identity: string;
  /** Hosts the rule applies to: "*" or a list of host names. */
  hosts: "*" | readonly string[];
  /** Functions (CNTLIDs) the identity may act on: "*" or a list. */
  functions: "*" | readonly number[];
}

export interface AuthzPolicy {
  /** This server's host name, matched against `AuthzRule.hosts`. */
  host: string;
  rules: readonly AuthzRule[];
}

/** What an identity may do on this host: nothing (null), everything ("*"), or a set of CNTLIDs. */
export type AllowedFunctions = null | "*" | ReadonlySet<number>;

const ruleSchema = z.strictObject({
  identity: z.string().min(1),
  hosts: z.union([z.literal("*"), z.array(z.string().min(1))]),
  functions: z.union([z.literal("*"), z.array(z.int().min(0).max(MAX_CNTLID))]),
});

const policySchema = z.strictObject({
  host: z.string().min(1),
  rules: z.array(ruleSchema),
});

/** Validates a policy read from JSON; throws ControlError `invalid-argument` listing the problems. */
export function parseAuthzPolicy(value: unknown): AuthzPolicy {
  const result = policySchema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new ControlError("invalid-argument", `invalid authz policy: ${issues}`, { cause: result.error });
  }
  return result.data;
}

/** A policy granting `identities` every function on `host` (tests, single-user setups). */
export function allowAll(host: string, identities: readonly string[]): AuthzPolicy {
  return { host, rules: identities.map((identity) => ({ identity, hosts: "*", functions: "*" })) };
}

export function allowedFunctions(policy: AuthzPolicy, identity: string): AllowedFunctions {
  let all = false;
  let any = false;
  const set = new Set<number>();
  for (const rule of policy.rules) {
    if (rule.identity !== identity) continue;
    if (rule.hosts !== "*" && !rule.hosts.includes(policy.host)) continue;
    any = true;
    if (rule.functions === "*") all = true;
    else for (const cntlid of rule.functions) set.add(cntlid);
  }
  if (!any) return null;
  return all ? "*" : set;
}

export function isAllowed(allowed: AllowedFunctions, cntlid: number): boolean {
  if (allowed === null) return false;
  return allowed === "*" || allowed.has(cntlid);
}
