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
  const r = vendorStateSchema.safeParse(parsed);
  if (!r.success) {
    const first = r.error.issues[0];
    return {
      ok: false,
      reason: `vendor section invalid at ${first?.path.join(".") ?? "?"}: ${first?.message ?? ""}`,
    };
  }
  return { ok: true, value: r.data };
}
