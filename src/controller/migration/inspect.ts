/**
 * A readable view of a TP4159 Controller State blob (`nvmig inspect`, logs, bug reports): the 48-byte
 * header, the NVMe Controller State with every I/O SQ / CQ entry's fields named and its attribute bits
 * (IOSQA, IOCQA) decoded, and the nvmig vendor section parsed and checked against its schema.
 *
 * Pure and total: any bytes give either an inspection or `{ error }` — never an exception. A blob
 * whose sizes do not add up is an error; a blob that decodes but that this build would refuse to
 * restore (other versions, not suspended, an invalid vendor section) is inspected and the reasons are
 * listed in `warnings` / `vendor.reason`.
 *
 * Output is JSON-safe: addresses and raw attribute fields are hex strings ("0x…"), everything else is
 * a number, boolean, string, array or plain object.
 */
import {
  CONTROLLER_STATE_HEADER_VER,
  CSATTR_SUSPENDED,
  decodeControllerState,
  decodeControllerStateHeader,
  decodeIocqa,
  decodeIosqa,
  type IoCompletionQueueState,
  type IoSubmissionQueueState,
  NVME_CONTROLLER_STATE_VER,
} from "../../nvme/controller-state.ts";
import { Qprio } from "../../nvme/create-delete-queues.ts";
import { decodeVendorState, VENDOR_STATE_FORMAT, VENDOR_STATE_VERSION } from "./vendor-state.ts";

/** Header bytes 3..15 are reserved. */
const HEADER_RESERVED_FROM = 3;
const HEADER_RESERVED_TO = 16;
/**
 * Largest blob a caller should read into memory to inspect, bytes: 64 MiB (a stream record carries at
 * most 16 MiB; nvmig's states are a few KiB). A larger file is not a controller state.
 */
export const MAX_INSPECT_STATE_BYTES = 64 * 1024 * 1024;
/** How many leading bytes of a vendor section that is not JSON are shown, hex. */
export const VENDOR_PREVIEW_BYTES = 64;

export interface InspectedHeader {
  /** Version of the Controller State data structure. */
  ver: number;
  csattr: { raw: string; suspended: boolean };
  /** NVMe Controller State Size: dwords and bytes. */
  nvmecss: { dwords: number; bytes: number };
  /** Vendor Specific Size: dwords and bytes. */
  vss: { dwords: number; bytes: number };
}

export interface InspectedIoSq {
  iosqqid: number;
  iosqcqid: number;
  /** PRP Entry 1 (queue base address), hex. */
  iosqprp1: string;
  /** Queue Size, 0's based, as stored. */
  iosqqsize: number;
  /** Queue entries (IOSQQSIZE + 1). */
  entries: number;
  iosqa: { raw: string; pc: boolean; qprio: number; qprioName: string };
  iosqhp: number;
  iosqtp: number;
  /** Entries submitted but not yet fetched ((tail − head) mod entries). */
  unfetched: number;
}

export interface InspectedIoCq {
  iocqqid: number;
  /** PRP Entry 1 (queue base address), hex. */
  iocqprp1: string;
  /** Queue Size, 0's based, as stored. */
  iocqqsize: number;
  /** Queue entries (IOCQQSIZE + 1). */
  entries: number;
  iocqa: { raw: string; pc: boolean; ien: boolean; s0pt: number; iv: number };
  iocqhp: number;
  iocqtp: number;
  /** Entries posted but not yet consumed by the host ((tail − head) mod entries). */
  pending: number;
}

export interface InspectedNvmeState {
  ver: number;
  niosq: number;
  niocq: number;
  iosq: InspectedIoSq[];
  iocq: InspectedIoCq[];
}

export type InspectedVendor =
  | {
      bytes: number;
      valid: true;
      format: string;
      version: number;
      /** The section's JSON as stored (fields this build does not know included). */
      json: unknown;
    }
  | {
      bytes: number;
      valid: false;
      /** Why the section would be refused (not JSON, wrong format / version, schema violation). */
      reason: string;
      /** The section's JSON when it parses at all. */
      json?: unknown;
      /** The first VENDOR_PREVIEW_BYTES bytes, hex, when it is not JSON. */
      previewHex?: string;
    };

export interface ControllerStateInspection {
  kind: "tp4159-controller-state";
  bytes: number;
  header: InspectedHeader;
  /** null when NVMECSS is 0 (no NVMe Controller State). */
  nvmeControllerState: InspectedNvmeState | null;
  /** null when VSS is 0 (no vendor section). */
  vendor: InspectedVendor | null;
  /** Things a restore on this build would object to, or that are unusual; empty when none. */
  warnings: string[];
}

export type ControllerStateInspectResult = ControllerStateInspection | { error: string };

export function hex(value: number, digits: number): string {
  return `0x${value.toString(16).padStart(digits, "0")}`;
}

function hexBytes(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

const qprioNames: Record<number, string> = Object.fromEntries(
  Object.entries(Qprio).map(([name, value]) => [value, name]),
);

function inspectSq(q: IoSubmissionQueueState): InspectedIoSq {
  const a = decodeIosqa(q.iosqa);
  const entries = q.iosqqsize + 1;
  return {
    iosqqid: q.iosqqid,
    iosqcqid: q.iosqcqid,
    iosqprp1: hex(q.iosqprp1, 16),
    iosqqsize: q.iosqqsize,
    entries,
    iosqa: { raw: hex(q.iosqa, 4), pc: a.pc, qprio: a.qprio, qprioName: qprioNames[a.qprio] ?? "?" },
    iosqhp: q.iosqhp,
    iosqtp: q.iosqtp,
    unfetched: (((q.iosqtp - q.iosqhp) % entries) + entries) % entries,
  };
}

function inspectCq(q: IoCompletionQueueState): InspectedIoCq {
  const a = decodeIocqa(q.iocqa);
  const entries = q.iocqqsize + 1;
  return {
    iocqqid: q.iocqqid,
    iocqprp1: hex(q.iocqprp1, 16),
    iocqqsize: q.iocqqsize,
    entries,
    iocqa: { raw: hex(q.iocqa, 8), pc: a.pc, ien: a.ien, s0pt: a.s0pt, iv: a.iv },
    iocqhp: q.iocqhp,
    iocqtp: q.iocqtp,
    pending: (((q.iocqtp - q.iocqhp) % entries) + entries) % entries,
  };
}

/** Pointers beyond a queue's size, repeated queue ids, SQs naming a CQ the state lacks. */
function queueWarnings(sqs: IoSubmissionQueueState[], cqs: IoCompletionQueueState[]): string[] {
  const out: string[] = [];
  const cqIds = new Set<number>();
  for (const q of cqs) {
    if (cqIds.has(q.iocqqid)) out.push(`I/O CQ ${q.iocqqid} appears more than once`);
    cqIds.add(q.iocqqid);
    if (q.iocqhp > q.iocqqsize || q.iocqtp > q.iocqqsize)
      out.push(
        `I/O CQ ${q.iocqqid} head ${q.iocqhp} / tail ${q.iocqtp} beyond its ${q.iocqqsize + 1} entries`,
      );
  }
  const sqIds = new Set<number>();
  for (const q of sqs) {
    if (sqIds.has(q.iosqqid)) out.push(`I/O SQ ${q.iosqqid} appears more than once`);
    sqIds.add(q.iosqqid);
    if (q.iosqhp > q.iosqqsize || q.iosqtp > q.iosqqsize)
      out.push(
        `I/O SQ ${q.iosqqid} head ${q.iosqhp} / tail ${q.iosqtp} beyond its ${q.iosqqsize + 1} entries`,
      );
    if (!cqIds.has(q.iosqcqid))
      out.push(`I/O SQ ${q.iosqqid} names CQ ${q.iosqcqid}, which is not in the state`);
  }
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function inspectVendor(bytes: Uint8Array): InspectedVendor {
  const checked = decodeVendorState(bytes);
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch {
    return {
      bytes: bytes.byteLength,
      valid: false,
      reason: checked.ok ? "vendor section is not UTF-8 JSON" : checked.reason,
      previewHex: hexBytes(bytes.subarray(0, VENDOR_PREVIEW_BYTES)),
    };
  }
  if (!checked.ok) return { bytes: bytes.byteLength, valid: false, reason: checked.reason, json };
  return {
    bytes: bytes.byteLength,
    valid: true,
    format: checked.value.format,
    version: checked.value.version,
    json,
  };
}

/** Decodes a TP4159 Controller State blob into a readable, JSON-safe object, or `{ error }`. */
export function inspectControllerState(bytes: Uint8Array): ControllerStateInspectResult {
  const d = decodeControllerState(bytes);
  if (!d.ok) return { error: `not a TP4159 controller state (${d.error}): ${d.detail}` };
  const s = d.value;
  const h = decodeControllerStateHeader(bytes);
  const warnings: string[] = [];
  if (s.ver !== CONTROLLER_STATE_HEADER_VER)
    warnings.push(`header VER ${s.ver}; this build writes and accepts ${CONTROLLER_STATE_HEADER_VER}`);
  if ((s.csattr & CSATTR_SUSPENDED) === 0)
    warnings.push("CSATTR: not captured from a suspended controller (a restore refuses it)");
  if ((s.csattr & ~CSATTR_SUSPENDED) !== 0) warnings.push(`CSATTR reserved bits set: ${hex(s.csattr, 2)}`);
  if (bytes.subarray(HEADER_RESERVED_FROM, HEADER_RESERVED_TO).some((b) => b !== 0))
    warnings.push("header reserved bytes 3..15 are not zero");
  if (s.nvme === undefined) warnings.push("no NVMe Controller State (NVMECSS 0)");
  else if (s.nvme.ver !== NVME_CONTROLLER_STATE_VER)
    warnings.push(
      `NVMe Controller State VER ${s.nvme.ver}; this build writes and accepts ${NVME_CONTROLLER_STATE_VER}`,
    );
  if (s.nvme !== undefined) warnings.push(...queueWarnings(s.nvme.sqs, s.nvme.cqs));
  const vendor = s.vendor.byteLength === 0 ? null : inspectVendor(s.vendor);
  if (vendor === null) warnings.push("no vendor section (VSS 0)");
  else if (!vendor.valid)
    warnings.push(
      `vendor section is not a valid ${VENDOR_STATE_FORMAT} v${VENDOR_STATE_VERSION}: ${vendor.reason}`,
    );
  const nvmecssDwords = Number(h.nvmecss);
  const vssDwords = Number(h.vss);
  return {
    kind: "tp4159-controller-state",
    bytes: bytes.byteLength,
    header: {
      ver: s.ver,
      csattr: { raw: hex(s.csattr, 2), suspended: (s.csattr & CSATTR_SUSPENDED) !== 0 },
      nvmecss: { dwords: nvmecssDwords, bytes: nvmecssDwords * 4 },
      vss: { dwords: vssDwords, bytes: vssDwords * 4 },
    },
    nvmeControllerState:
      s.nvme === undefined
        ? null
        : {
            ver: s.nvme.ver,
            niosq: s.nvme.sqs.length,
            niocq: s.nvme.cqs.length,
            iosq: s.nvme.sqs.map(inspectSq),
            iocq: s.nvme.cqs.map(inspectCq),
          },
    vendor,
    warnings,
  };
}
