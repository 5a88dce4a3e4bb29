/**
 * nvmig's vendor-specific controller state section (TP4159 "Vendor Specific" area, format UUID
 * `NVMIG_STATE_FORMAT_UUID`): everything a controller needs to continue on another host that the
 * NVMe-defined NVMe Controller State (I/O SQs / CQs only) does not carry.
 *
 * Encoding: UTF-8 JSON, named and versioned, padded with spaces to whole dwords. It is parsed with a
 * strict schema: every field is named; unknown fields are tolerated (forward compatibility within a
 * major version); a wrong `format` or an unsupported `version` is refused.
 *
 * Compatibility rule: this build writes version `VENDOR_STATE_VERSION` and accepts it and the previous
 * version (`VENDOR_STATE_MIN_VERSION`).
 */
import { z } from "zod";

export const VENDOR_STATE_FORMAT = "nvmig-controller-state";
export const VENDOR_STATE_VERSION = 1;
export const VENDOR_STATE_MIN_VERSION = 1;

const u16 = z.number().int().min(0).max(0xffff);
const u32 = z.number().int().min(0).max(0xffffffff);
const address = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const vendorStateSchema = z.object({
  format: z.literal(VENDOR_STATE_FORMAT),
  version: z.number().int().min(VENDOR_STATE_MIN_VERSION).max(VENDOR_STATE_VERSION),
  identity: z.object({
    serial: z.string(),
    model: z.string(),
    subnqn: z.string(),
    vid: u16,
    cntlid: u16,
  }),
  registers: z.object({ cc: u32, csts: u32, aqa: u32, asq: address, acq: address, intms: u32 }),
  adminQueue: z
    .object({
      sqHead: u16,
      sqTail: u16,
      cqHead: u16,
      cqTail: u16,
      cqPhase: z.number().int().min(0).max(1),
    })
    .nullable(),
  resources: z.object({
    maxIoQueuePairs: z.number().int().min(1).max(511),
    msixVectors: z.number().int().min(1).max(2048),
  }),
  features: z.object({
    arbitration: u32,
    powerManagement: u32,
    temperatureThresholds: z.record(z.string(), u16),
    errorRecovery: u32,
    volatileWriteCache: z.number().int().min(0).max(1),
    numberOfQueues: z.number().int().min(-1).max(0xffffffff),
    interruptCoalescing: u32,
    interruptVectorConfig: z.record(z.string(), u32),
    writeAtomicity: z.number().int().min(0).max(1),
    asyncEventConfig: u32,
  }),
  asyncEvents: z.object({
    outstanding: z.array(u16).max(4),
    pending: z
      .array(
        z.object({
          type: z.number().int().min(0).max(7),
          info: z.number().int().min(0).max(255),
          logPage: z.number().int().min(0).max(255),
        }),
      )
      .max(64),
    maskedTypes: z.array(z.number().int().min(0).max(7)),
    errorCount: z.string().regex(/^[0-9]+$/),
  }),
  dbbuf: z.object({ shadowIova: address, eventIdxIova: address }).nullable(),
  /** Completions waiting for completion-queue space, per CQID, in order. */
  cqOverflow: z.record(
    z.string(),
    z.array(
      z.object({ dw0: u32, dw1: u32, sqid: u16, cid: u16, status: z.number().int().min(0).max(0x7fff) }),
    ),
  ),
  namespaces: z.object({ attached: z.array(u32), changed: z.array(u32) }),
  stats: z.object({
    hostReadCommands: z.number().int().min(0),
    hostWriteCommands: z.number().int().min(0),
    dataUnitsReadBytes: z.number().int().min(0),
    dataUnitsWrittenBytes: z.number().int().min(0),
  }),
  suspendNotified: z.boolean(),
  /** The PCI function's own state (config space, MSI-X table and PBA); null when none is attached. */
  pciFunction: z.unknown(),
});

export type VendorState = z.infer<typeof vendorStateSchema>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeVendorState(v: VendorState): Uint8Array {
  const json = encoder.encode(JSON.stringify(v));
  const padded = new Uint8Array(Math.ceil(json.byteLength / 4) * 4).fill(0x20);
  padded.set(json);
  return padded;
}

export type VendorStateResult = { ok: true; value: VendorState } | { ok: false; reason: string };

export function decodeVendorState(bytes: Uint8Array): VendorStateResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch (e) {
    return { ok: false, reason: `vendor section is not UTF-8 JSON: ${(e as Error).message}` };
  }
  const r = parseVendorState(parsed);
  if (!r.ok) return { ok: false, reason: `vendor section invalid at ${r.path || "(root)"}: ${r.message}` };
  return { ok: true, value: r.value };
}

// ---- the schema's checks, written out ------------------------------------------------------------
//
// What a restore runs on the destination while the device is stopped. `vendorStateSchema` stays the
// definition of the format (types, documentation, and a property test that keeps the two in step);
// this parser makes the same checks without the schema machinery, which costs a few hundred
// microseconds of device downtime when it runs cold — once per migration, never hot enough to be
// optimized. Same semantics: every named field is required and checked (integers are safe integers
// in range), unknown fields are dropped, `pciFunction` must be present and passes through unchecked
// (its owner checks it); the first problem is reported with its path.

export type VendorStateParse =
  | { ok: true; value: VendorState }
  | { ok: false; path: string; message: string };

const U16 = 0xffff;
const U32 = 0xffffffff;

/** A problem at `path` (the parse stops at the first). */
class Problem {
  constructor(
    readonly path: string,
    readonly message: string,
  ) {}
}

type Obj = Record<string, unknown>;

function object(v: unknown, path: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Problem(path, "expected an object");
  return v as Obj;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max)
    throw new Problem(path, `expected an integer in ${min}..${max}`);
  return v;
}

function str(v: unknown, path: string): string {
  if (typeof v !== "string") throw new Problem(path, "expected a string");
  return v;
}

function array(v: unknown, path: string, max = Number.POSITIVE_INFINITY): unknown[] {
  if (!Array.isArray(v)) throw new Problem(path, "expected an array");
  if (v.length > max) throw new Problem(path, `expected at most ${max} entries`);
  return v;
}

function record<T>(v: unknown, path: string, item: (x: unknown, p: string) => T): Record<string, T> {
  const o = object(v, path);
  const out: Record<string, T> = {};
  for (const k of Object.keys(o)) out[k] = item(o[k], `${path}.${k}`);
  return out;
}

const checkU16 = (v: unknown, p: string) => int(v, p, 0, U16);
const checkU32 = (v: unknown, p: string) => int(v, p, 0, U32);
const checkAddress = (v: unknown, p: string) => int(v, p, 0, Number.MAX_SAFE_INTEGER);

function parse(x: unknown): VendorState {
  const o = object(x, "");
  if (o.format !== VENDOR_STATE_FORMAT) throw new Problem("format", `expected "${VENDOR_STATE_FORMAT}"`);
  const version = int(o.version, "version", VENDOR_STATE_MIN_VERSION, VENDOR_STATE_VERSION);

  const id = object(o.identity, "identity");
  const identity = {
    serial: str(id.serial, "identity.serial"),
    model: str(id.model, "identity.model"),
    subnqn: str(id.subnqn, "identity.subnqn"),
    vid: checkU16(id.vid, "identity.vid"),
    cntlid: checkU16(id.cntlid, "identity.cntlid"),
  };

  const r = object(o.registers, "registers");
  const registers = {
    cc: checkU32(r.cc, "registers.cc"),
    csts: checkU32(r.csts, "registers.csts"),
    aqa: checkU32(r.aqa, "registers.aqa"),
    asq: checkAddress(r.asq, "registers.asq"),
    acq: checkAddress(r.acq, "registers.acq"),
    intms: checkU32(r.intms, "registers.intms"),
  };

  let adminQueue: VendorState["adminQueue"] = null;
  if (o.adminQueue !== null) {
    const a = object(o.adminQueue, "adminQueue");
    adminQueue = {
      sqHead: checkU16(a.sqHead, "adminQueue.sqHead"),
      sqTail: checkU16(a.sqTail, "adminQueue.sqTail"),
      cqHead: checkU16(a.cqHead, "adminQueue.cqHead"),
      cqTail: checkU16(a.cqTail, "adminQueue.cqTail"),
      cqPhase: int(a.cqPhase, "adminQueue.cqPhase", 0, 1),
    };
  }

  const res = object(o.resources, "resources");
  const resources = {
    maxIoQueuePairs: int(res.maxIoQueuePairs, "resources.maxIoQueuePairs", 1, 511),
    msixVectors: int(res.msixVectors, "resources.msixVectors", 1, 2048),
  };

  const f = object(o.features, "features");
  const features = {
    arbitration: checkU32(f.arbitration, "features.arbitration"),
    powerManagement: checkU32(f.powerManagement, "features.powerManagement"),
    temperatureThresholds: record(f.temperatureThresholds, "features.temperatureThresholds", checkU16),
    errorRecovery: checkU32(f.errorRecovery, "features.errorRecovery"),
    volatileWriteCache: int(f.volatileWriteCache, "features.volatileWriteCache", 0, 1),
    numberOfQueues: int(f.numberOfQueues, "features.numberOfQueues", -1, U32),
    interruptCoalescing: checkU32(f.interruptCoalescing, "features.interruptCoalescing"),
    interruptVectorConfig: record(f.interruptVectorConfig, "features.interruptVectorConfig", checkU32),
    writeAtomicity: int(f.writeAtomicity, "features.writeAtomicity", 0, 1),
    asyncEventConfig: checkU32(f.asyncEventConfig, "features.asyncEventConfig"),
  };

  const ae = object(o.asyncEvents, "asyncEvents");
  const asyncEvents = {
    outstanding: array(ae.outstanding, "asyncEvents.outstanding", 4).map((v, i) =>
      checkU16(v, `asyncEvents.outstanding.${i}`),
    ),
    pending: array(ae.pending, "asyncEvents.pending", 64).map((v, i) => {
      const p = object(v, `asyncEvents.pending.${i}`);
      return {
        type: int(p.type, `asyncEvents.pending.${i}.type`, 0, 7),
        info: int(p.info, `asyncEvents.pending.${i}.info`, 0, 255),
        logPage: int(p.logPage, `asyncEvents.pending.${i}.logPage`, 0, 255),
      };
    }),
    maskedTypes: array(ae.maskedTypes, "asyncEvents.maskedTypes").map((v, i) =>
      int(v, `asyncEvents.maskedTypes.${i}`, 0, 7),
    ),
    errorCount: str(ae.errorCount, "asyncEvents.errorCount"),
  };
  if (!/^[0-9]+$/.test(asyncEvents.errorCount))
    throw new Problem("asyncEvents.errorCount", "expected decimal digits");

  let dbbuf: VendorState["dbbuf"] = null;
  if (o.dbbuf !== null) {
    const d = object(o.dbbuf, "dbbuf");
    dbbuf = {
      shadowIova: checkAddress(d.shadowIova, "dbbuf.shadowIova"),
      eventIdxIova: checkAddress(d.eventIdxIova, "dbbuf.eventIdxIova"),
    };
  }

  const cqOverflow = record(o.cqOverflow, "cqOverflow", (list, path) =>
    array(list, path).map((v, i) => {
      const e = object(v, `${path}.${i}`);
      return {
        dw0: checkU32(e.dw0, `${path}.${i}.dw0`),
        dw1: checkU32(e.dw1, `${path}.${i}.dw1`),
        sqid: checkU16(e.sqid, `${path}.${i}.sqid`),
        cid: checkU16(e.cid, `${path}.${i}.cid`),
        status: int(e.status, `${path}.${i}.status`, 0, 0x7fff),
      };
    }),
  );

  const ns = object(o.namespaces, "namespaces");
  const namespaces = {
    attached: array(ns.attached, "namespaces.attached").map((v, i) =>
      checkU32(v, `namespaces.attached.${i}`),
    ),
    changed: array(ns.changed, "namespaces.changed").map((v, i) => checkU32(v, `namespaces.changed.${i}`)),
  };

  const s = object(o.stats, "stats");
  const max = Number.MAX_SAFE_INTEGER;
  const stats = {
    hostReadCommands: int(s.hostReadCommands, "stats.hostReadCommands", 0, max),
    hostWriteCommands: int(s.hostWriteCommands, "stats.hostWriteCommands", 0, max),
    dataUnitsReadBytes: int(s.dataUnitsReadBytes, "stats.dataUnitsReadBytes", 0, max),
    dataUnitsWrittenBytes: int(s.dataUnitsWrittenBytes, "stats.dataUnitsWrittenBytes", 0, max),
  };

  if (typeof o.suspendNotified !== "boolean") throw new Problem("suspendNotified", "expected a boolean");
  // Required, any value (its owner checks it).
  if (!("pciFunction" in o)) throw new Problem("pciFunction", "required");

  return {
    format: VENDOR_STATE_FORMAT,
    version,
    identity,
    registers,
    adminQueue,
    resources,
    features,
    asyncEvents,
    dbbuf,
    cqOverflow,
    namespaces,
    stats,
    suspendNotified: o.suspendNotified,
    pciFunction: o.pciFunction,
  };
}

/** Checks a parsed JSON value against the vendor state format (see the module comment). */
export function parseVendorState(x: unknown): VendorStateParse {
  try {
    return { ok: true, value: parse(x) };
  } catch (e) {
    if (e instanceof Problem) return { ok: false, path: e.path, message: e.message };
    throw e;
  }
}
