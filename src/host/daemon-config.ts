/**
 * The host daemon's configuration file (`nvmig host --config FILE`), validated with zod. Every field,
 * with its default, unit and range:
 *
 * ```jsonc
 * {
 *   "name": "host-a",              // host name in logs, events, authz. Default "host"; 1..64 of [A-Za-z0-9._-]
 *   "socketDir": "/run/nvmig/host-a", // directory of the vfio-user sockets (created if missing, mode 0755):
 *                                     //   pf.sock (the PF, read-only) and vf<N>.sock per enabled VF. Required.
 *   "socketMode": "0600",          // file mode of each socket, octal string. Default "0600"; "0000".."0777"
 *   "namespaces": [                // the subsystem's namespaces, 1..64 of them, nsids unique
 *     { "nsid": 1,                 // 1..1024
 *       "backend": "memory",       // "memory" (sparse, in RAM) or "file" (positional I/O on a sparse file)
 *       "path": "/var/lib/ns1.img",// file backend only (required there): created (0600) if missing, sized
 *       "lbaBytes": 512,           // logical block size, bytes: 512 or 4096
 *       "sizeBytes": 67108864 }    // namespace size, bytes: a multiple of lbaBytes, 1 block .. 2^53 − 1
 *   ],
 *   "vfs": 4,                      // VFs enabled in the PF's SR-IOV capability (= secondary controllers).
 *                                  //   Default 4; 0..127
 *   "onlineVfs": [                 // VFs brought online at start (I/O queues + interrupts assigned). Default []
 *     { "vfn": 1,                  //   1..vfs, unique
 *       "ioQueuePairs": 4 }        //   I/O queue pairs (+ the admin queue). Default 4; 1..64
 *   ],
 *   "storage": "local",            // migration of VF state: "local" (namespace data moves too) or "shared"
 *                                  //   (both hosts see the same storage). Default "local"
 *   "profile": "tp4159",           // PF command set of the migration variant driver: "tp4159" or "intel".
 *                                  //   Default "tp4159"
 *   "control": {                   // optional: the gRPC control plane (the controlling function's agent)
 *     "unixSocket": "/run/nvmig/host-a/control.sock", // UNIX listener (mode 0600; callers are identity "local")
 *     "tcp": {                     // TCP listener
 *       "host": "127.0.0.1",       //   bind address. Default "127.0.0.1"
 *       "port": 0,                 //   0 = any free port (reported in the ready line). Default 0; 0..65535
 *       "tlsDir": "/etc/nvmig/pki",//   mutual TLS from `nvmig certs`: ca.crt, server-<tlsServerName>.crt/.key
 *       "tlsServerName": "localhost", // which server certificate of tlsDir. Default: tcp.host
 *       "insecure": false },       //   plain text, no authentication — tests only. Default false.
 *                                  //   Exactly one of tlsDir / insecure: true
 *     "authz": { "rules": [ { "identity": "orchestrator", "hosts": "*", "functions": "*" } ] }
 *                                  //   who may act on which functions (see control/authz.ts). Default: the
 *                                  //   identities "local" and "orchestrator" may act on every function
 *   }                              //   at least one of unixSocket / tcp
 * }
 * ```
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { MAX_CNTLID } from "../control/limits.ts";

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Most I/O queue pairs one VF may get (VQFRSM 65 includes the admin queue). */
export const MAX_VF_IO_QUEUE_PAIRS = 64;

const namespaceSchema = z
  .strictObject({
    nsid: z.int().min(1).max(1024),
    backend: z.enum(["memory", "file"]),
    path: z.string().min(1).optional(),
    lbaBytes: z.union([z.literal(512), z.literal(4096)]),
    sizeBytes: z.int().min(512).max(Number.MAX_SAFE_INTEGER),
  })
  .superRefine((ns, ctx) => {
    if (ns.sizeBytes % ns.lbaBytes !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["sizeBytes"],
        message: `not a multiple of lbaBytes ${ns.lbaBytes}`,
      });
    }
    if (ns.backend === "file" && ns.path === undefined) {
      ctx.addIssue({ code: "custom", path: ["path"], message: "required for the file backend" });
    }
    if (ns.backend === "memory" && ns.path !== undefined) {
      ctx.addIssue({ code: "custom", path: ["path"], message: "only for the file backend" });
    }
  });

const tcpSchema = z
  .strictObject({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.int().min(0).max(65535).default(0),
    tlsDir: z.string().min(1).optional(),
    tlsServerName: z.string().min(1).optional(),
    insecure: z.boolean().default(false),
  })
  .refine((t) => (t.tlsDir !== undefined) !== t.insecure, {
    message: "exactly one of tlsDir or insecure: true",
  });

const authzRuleSchema = z.strictObject({
  identity: z.string().min(1),
  hosts: z.union([z.literal("*"), z.array(z.string().min(1))]),
  functions: z.union([z.literal("*"), z.array(z.int().min(0).max(MAX_CNTLID))]),
});

const controlSchema = z
  .strictObject({
    unixSocket: z.string().min(1).optional(),
    tcp: tcpSchema.optional(),
    authz: z.strictObject({ rules: z.array(authzRuleSchema) }).optional(),
  })
  .refine((c) => c.unixSocket !== undefined || c.tcp !== undefined, {
    message: "needs unixSocket and/or tcp",
  });

export const hostConfigSchema = z
  .strictObject({
    name: z.string().regex(NAME_PATTERN, "1..64 of [A-Za-z0-9._-]").default("host"),
    socketDir: z.string().min(1),
    socketMode: z
      .string()
      .regex(/^0?[0-7]{3}$/, 'octal mode like "0600"')
      .default("0600"),
    namespaces: z.array(namespaceSchema).min(1).max(64),
    vfs: z.int().min(0).max(127).default(4),
    onlineVfs: z
      .array(
        z.strictObject({
          vfn: z.int().min(1).max(127),
          ioQueuePairs: z.int().min(1).max(MAX_VF_IO_QUEUE_PAIRS).default(4),
        }),
      )
      .default([]),
    storage: z.enum(["local", "shared"]).default("local"),
    profile: z.enum(["tp4159", "intel"]).default("tp4159"),
    control: controlSchema.optional(),
  })
  .superRefine((c, ctx) => {
    const nsids = new Set<number>();
    c.namespaces.forEach((ns, i) => {
      if (nsids.has(ns.nsid))
        ctx.addIssue({ code: "custom", path: ["namespaces", i, "nsid"], message: "duplicate" });
      nsids.add(ns.nsid);
    });
    const vfns = new Set<number>();
    c.onlineVfs.forEach((v, i) => {
      if (v.vfn > c.vfs) {
        ctx.addIssue({ code: "custom", path: ["onlineVfs", i, "vfn"], message: `above vfs (${c.vfs})` });
      }
      if (vfns.has(v.vfn))
        ctx.addIssue({ code: "custom", path: ["onlineVfs", i, "vfn"], message: "duplicate" });
      vfns.add(v.vfn);
    });
  });

/** A validated configuration with every default applied. */
export type HostConfig = z.infer<typeof hostConfigSchema>;

export type HostConfigErrorCode = "unreadable" | "not-json" | "invalid";

/** The configuration file could not be used; the message names the file and every problem. */
export class HostConfigError extends Error {
  override readonly name = "HostConfigError";
  constructor(
    readonly code: HostConfigErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
  }
}

/** Validates a parsed configuration (throws HostConfigError "invalid" listing the problems). */
export function parseHostConfig(value: unknown, source = "config"): HostConfig {
  const r = hostConfigSchema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new HostConfigError("invalid", `${source}: ${issues}`, { cause: r.error });
  }
  return r.data;
}

/** Reads and validates the configuration file at `path`. */
export function loadHostConfig(path: string): HostConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new HostConfigError("unreadable", `${path}: ${(e as Error).message}`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HostConfigError("not-json", `${path}: not JSON (${(e as Error).message})`, { cause: e });
  }
  return parseHostConfig(value, path);
}
