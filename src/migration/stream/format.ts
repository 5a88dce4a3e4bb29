/**
 * The device migration stream: what one function's saving data_fd produces and its resuming data_fd
 * accepts. A stream header, then framed, checksummed, self-describing records, then END. Everything is
 * little-endian. This module holds the layouts, limits and payload codecs; `writer.ts` produces streams
 * and `reader.ts` validates them.
 *
 * Happy path (in-band, PRE_COPY; out-of-band carries the same bytes in gRPC GetState/SetState chunks):
 *
 *   source device (saving data_fd)                          destination device (resuming data_fd)
 *   ──────────────────────────────                          ─────────────────────────────────────
 *   RUNNING→PRE_COPY: new StreamWriter                      RUNNING→STOP→RESUMING: new StreamParser
 *     STREAM HEADER ──────────────────────────────────────► push(): magic, version, header CRC
 *     STOP_COPY_SIZE_HINT (optional) ─────────────────────► push(): noted (lets it pre-size)
 *     NAMESPACE_DATA × n   (first pass over all blocks) ──► push(): each record: length bound, tag,
 *     CHANGED_LBA_RANGES / NAMESPACE_DATA (dirty passes) ─►        CRC-32C, payload layout;
 *     read() with nothing pending → ENOMSG (temporary EOS)          kept, NOT applied
 *   PRE_COPY→STOP_COPY (Suspend; downtime runs)
 *     NAMESPACE_DATA (blocks changed since the last pass) ►
 *     CONTROLLER_STATE (TP4159 Get Controller State) ─────►
 *     END {recordCount, chainCrc32c, streamBytes} ────────► push(): summary checked; later bytes refused
 *     read() → 0 bytes forever (permanent EOS)             RESUMING→STOP: finish() ── ok ──► apply
 *                                                          (Set Controller State, write blocks);
 *                                                          not ok ──► refuse, nothing was changed
 *
 * Receiver states (reader.ts): a failure in any state is final (FAILED; later bytes are ignored).
 *
 *   STREAM_HEADER ──header ok──► RECORD_HEADER ──header ok──► RECORD_PAYLOAD ──CRC + layout ok──┐
 *                                      ▲                                                      │
 *                                      └──────────────── tag ≠ END ◄──────────────────────────┘
 *                                                         tag = END ──► ENDED ──any byte──► FAILED
 *
 * Compatibility rule:
 * - A parser accepts the current stream version (2) and the previous one (1); anything else is
 *   `unsupported-version`. A writer emits the current version unless asked for the previous one (for an
 *   older destination). Version 1 differs only in END, which has an empty payload (no summary).
 * - Record flags bit 0 = OPTIONAL. An unknown tag with OPTIONAL set is skipped (its CRC is still
 *   checked); an unknown tag without it is `unknown-mandatory-tag`. Known tags are understood whatever
 *   their OPTIONAL bit says. New information a destination may ignore gets a new optional tag;
 *   information it must understand gets a new mandatory tag or a version bump.
 * - Reserved bits and fields must be zero; a parser refuses them (`malformed-record`), because a later
 *   version may give them a meaning an old parser cannot honour.
 *
 * Stream header (36 + identityBytes bytes):
 *   0  magic[8]        "NVMIGSTR" (ASCII)
 *   8  version u16     STREAM_VERSION (2) or STREAM_VERSION_PREVIOUS (1)
 *   10 flags u16       bit 0 USER_DATA: namespace data / changed ranges may follow (local storage)
 *   12 formatUuid[16]  the producer's device-state format (RFC 4122 byte order)
 *   28 identityBytes u16  0..MAX_IDENTITY_BYTES
 *   30 reserved u16    0
 *   32 identity[identityBytes]  UTF-8, free form (e.g. "nvmig 0.1.0 nvme-vf cntlid=3")
 *   32+identityBytes  crc32c u32 of bytes [0, 32 + identityBytes)
 *
 * Record: 16-byte header + payload of `lengthBytes` (0..MAX_RECORD_PAYLOAD_BYTES = 16 MiB):
 *   0  tag u32         RecordTag (0 is reserved, invalid)
 *   4  flags u32       bit 0 OPTIONAL; bits 31:1 reserved
 *   8  lengthBytes u32 payload length
 *   12 crc32c u32      CRC-32C of header bytes [0, 12) followed by the payload
 *
 * Payloads (counts are 1-based; `nlb` is a number of blocks, not the 0's based NVMe field):
 *   CONTROLLER_STATE    opaque bytes (the TP4159 controller state), 1..16 MiB
 *   NAMESPACE_DATA      0 nsid u32 · 4 nlb u32 · 8 slba u64 · 16 lbaBytes u32 (512|4096) · 20 reserved u32
 *                       · 24 data[nlb × lbaBytes]
 *   CHANGED_LBA_RANGES  0 count u32 · 4 reserved u32 · 8 count × {0 nsid u32 · 4 nlb u32 · 8 slba u64}
 *   STOP_COPY_SIZE_HINT 0 stopCopyBytes u64 (written OPTIONAL)
 *   END (v2)            0 recordCount u32 · 4 chainCrc32c u32 · 8 streamBytes u64
 *                       recordCount: records before END (skipped ones included); streamBytes: stream
 *                       bytes before END's header; chainCrc32c: CRC-32C over the header CRC and every
 *                       record CRC before END, each as u32 LE — detects dropped, repeated or reordered
 *                       records without a second pass over the data.
 *   END (v1)            empty
 */

/** "NVMIGSTR" in ASCII. */
export const STREAM_MAGIC = Uint8Array.from([0x4e, 0x56, 0x4d, 0x49, 0x47, 0x53, 0x54, 0x52]);
export const STREAM_VERSION = 2;
export const STREAM_VERSION_PREVIOUS = 1;
export type StreamVersion = typeof STREAM_VERSION | typeof STREAM_VERSION_PREVIOUS;

export const StreamHeaderOffset = {
  MAGIC: 0,
  VERSION: 8,
  FLAGS: 10,
  FORMAT_UUID: 12,
  IDENTITY_BYTES: 28,
  RESERVED: 30,
  IDENTITY: 32,
} as const;
/** Stream header bytes before the identity string. */
export const STREAM_HEADER_FIXED_BYTES = 32;
/** Longest identity string, in UTF-8 bytes. */
export const MAX_IDENTITY_BYTES = 1024;
export const FORMAT_UUID_BYTES = 16;

export const StreamFlag = {
  /** Namespace data and changed LBA ranges may follow (the function's storage is local). */
  USER_DATA: 1 << 0,
} as const;
const STREAM_FLAGS_KNOWN = StreamFlag.USER_DATA;

export const RecordOffset = { TAG: 0, FLAGS: 4, LENGTH_BYTES: 8, CRC32C: 12 } as const;
export const RECORD_HEADER_BYTES = 16;
/** Header bytes covered by the record CRC (tag, flags, lengthBytes). */
export const RECORD_HEADER_CRC_COVERED_BYTES = 12;
/** Largest record payload: 16 MiB. */
export const MAX_RECORD_PAYLOAD_BYTES = 16 * 1024 * 1024;

export const RecordFlag = {
  /** An unknown tag with this bit set may be skipped. */
  OPTIONAL: 1 << 0,
} as const;
const RECORD_FLAGS_KNOWN = RecordFlag.OPTIONAL;

export const RecordTag = {
  CONTROLLER_STATE: 1,
  NAMESPACE_DATA: 2,
  CHANGED_LBA_RANGES: 3,
  STOP_COPY_SIZE_HINT: 4,
  END: 5,
} as const;
export type RecordTag = (typeof RecordTag)[keyof typeof RecordTag];

export const NAMESPACE_DATA_HEADER_BYTES = 24;
export const CHANGED_LBA_RANGES_HEADER_BYTES = 8;
export const CHANGED_LBA_RANGE_ENTRY_BYTES = 16;
export const STOP_COPY_SIZE_HINT_BYTES = 8;
export const END_SUMMARY_BYTES = 16;

/** Most blocks one NAMESPACE_DATA record carries for a block size (32767 for 512, 4095 for 4096). */
export function maxNamespaceDataLbas(lbaBytes: 512 | 4096): number {
  return Math.floor((MAX_RECORD_PAYLOAD_BYTES - NAMESPACE_DATA_HEADER_BYTES) / lbaBytes);
}
/** Most entries one CHANGED_LBA_RANGES record carries. */
export const MAX_CHANGED_LBA_RANGES_PER_RECORD = Math.floor(
  (MAX_RECORD_PAYLOAD_BYTES - CHANGED_LBA_RANGES_HEADER_BYTES) / CHANGED_LBA_RANGE_ENTRY_BYTES,
);

/** The decoded stream header. */
export interface StreamHeader {
  version: StreamVersion;
  flags: number;
  /** Lower-case "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
  formatUuid: string;
  identity: string;
}

/** A block range of one namespace; `nlb` is a count (1-based). */
export interface NsLbaRange {
  nsid: number;
  slba: number;
  nlb: number;
}

export interface ControllerStateRecord {
  tag: typeof RecordTag.CONTROLLER_STATE;
  state: Uint8Array;
}
export interface NamespaceDataRecord {
  tag: typeof RecordTag.NAMESPACE_DATA;
  nsid: number;
  slba: number;
  /** Number of blocks (1-based). */
  nlb: number;
  lbaBytes: 512 | 4096;
  /** `nlb × lbaBytes` bytes. */
  data: Uint8Array;
}
export interface ChangedLbaRangesRecord {
  tag: typeof RecordTag.CHANGED_LBA_RANGES;
  ranges: NsLbaRange[];
}
export interface StopCopySizeHintRecord {
  tag: typeof RecordTag.STOP_COPY_SIZE_HINT;
  stopCopyBytes: number;
}
/** A record the parser hands to its caller (END is reported separately). */
export type StreamRecord =
  | ControllerStateRecord
  | NamespaceDataRecord
  | ChangedLbaRangesRecord
  | StopCopySizeHintRecord;

/** The END record's summary (absent in version 1 streams). */
export interface EndSummary {
  recordCount: number;
  chainCrc32c: number;
  streamBytes: number;
}

/** Result of decoding one field group; `detail` explains a refusal. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; detail: string };

// ── u64 as number ─────────────────────────────────────────────────────────────────────────────────────

/** Reads a u64; undefined when it exceeds Number.MAX_SAFE_INTEGER. */
export function getU64(v: DataView, at: number): number | undefined {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  if (hi >= 0x20_0000) return undefined;
  return hi * 0x1_0000_0000 + lo;
}

export function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value >>> 0, true);
  v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

// ── format UUID ───────────────────────────────────────────────────────────────────────────────────────

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into 16 bytes; undefined if not that shape. */
export function uuidToBytes(uuid: string): Uint8Array | undefined {
  if (!UUID_RE.test(uuid)) return undefined;
  const hex = uuid.replaceAll("-", "");
  const out = new Uint8Array(FORMAT_UUID_BYTES);
  for (let i = 0; i < FORMAT_UUID_BYTES; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function uuidFromBytes(b: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < FORMAT_UUID_BYTES; i++) hex += (b[i] ?? 0).toString(16).padStart(2, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ── stream header ─────────────────────────────────────────────────────────────────────────────────────

export function isAcceptedVersion(version: number): version is StreamVersion {
  return version === STREAM_VERSION || version === STREAM_VERSION_PREVIOUS;
}

/** Encodes a header including its trailing CRC placeholder (the writer fills the CRC). */
export function encodeStreamHeaderBody(header: StreamHeader): Uint8Array {
  const uuid = uuidToBytes(header.formatUuid);
  if (uuid === undefined) throw new RangeError(`formatUuid is not a UUID: ${header.formatUuid}`);
  const identity = new TextEncoder().encode(header.identity);
  if (identity.byteLength > MAX_IDENTITY_BYTES) {
    throw new RangeError(`identity is ${identity.byteLength} UTF-8 bytes, max ${MAX_IDENTITY_BYTES}`);
  }
  if ((header.flags & ~STREAM_FLAGS_KNOWN) !== 0)
    throw new RangeError(`unknown stream flags ${header.flags}`);
  const out = new Uint8Array(STREAM_HEADER_FIXED_BYTES + identity.byteLength + 4);
  const v = view(out);
  out.set(STREAM_MAGIC, StreamHeaderOffset.MAGIC);
  v.setUint16(StreamHeaderOffset.VERSION, header.version, true);
  v.setUint16(StreamHeaderOffset.FLAGS, header.flags, true);
  out.set(uuid, StreamHeaderOffset.FORMAT_UUID);
  v.setUint16(StreamHeaderOffset.IDENTITY_BYTES, identity.byteLength, true);
  out.set(identity, StreamHeaderOffset.IDENTITY);
  return out;
}

/** Checks the fixed part's flags and reserved field; returns the identity length. */
export function decodeStreamHeaderFixed(
  fixed: Uint8Array,
): Decoded<{ flags: number; identityBytes: number }> {
  const v = view(fixed);
  const flags = v.getUint16(StreamHeaderOffset.FLAGS, true);
  if ((flags & ~STREAM_FLAGS_KNOWN) !== 0)
    return { ok: false, detail: `reserved stream flags set: 0x${hex(flags)}` };
  if (v.getUint16(StreamHeaderOffset.RESERVED, true) !== 0)
    return { ok: false, detail: "stream header reserved field set" };
  const identityBytes = v.getUint16(StreamHeaderOffset.IDENTITY_BYTES, true);
  if (identityBytes > MAX_IDENTITY_BYTES) {
    return { ok: false, detail: `identity of ${identityBytes} bytes exceeds ${MAX_IDENTITY_BYTES}` };
  }
  return { ok: true, value: { flags, identityBytes } };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes a complete header (CRC already checked). */
export function decodeStreamHeader(
  b: Uint8Array,
  version: StreamVersion,
  flags: number,
): Decoded<StreamHeader> {
  const identityBytes = view(b).getUint16(StreamHeaderOffset.IDENTITY_BYTES, true);
  let identity: string;
  try {
    identity = utf8.decode(
      b.subarray(StreamHeaderOffset.IDENTITY, StreamHeaderOffset.IDENTITY + identityBytes),
    );
  } catch {
    return { ok: false, detail: "identity is not valid UTF-8" };
  }
  const formatUuid = uuidFromBytes(b.subarray(StreamHeaderOffset.FORMAT_UUID));
  return { ok: true, value: { version, flags, formatUuid, identity } };
}

// ── records ───────────────────────────────────────────────────────────────────────────────────────────

export function isKnownTag(tag: number): tag is RecordTag {
  return tag >= RecordTag.CONTROLLER_STATE && tag <= RecordTag.END;
}

/** Checks record flags against the reserved bits; undefined when fine. */
export function checkRecordFlags(flags: number): string | undefined {
  return (flags & ~RECORD_FLAGS_KNOWN) !== 0 ? `reserved record flags set: 0x${hex(flags)}` : undefined;
}

/**
 * Checks a known tag's payload length against its layout before the payload arrives; undefined when
 * fine. `streamFlags` gates the user-data records.
 */
export function checkRecordLength(
  tag: RecordTag,
  lengthBytes: number,
  version: StreamVersion,
  streamFlags: number,
): string | undefined {
  switch (tag) {
    case RecordTag.CONTROLLER_STATE:
      return lengthBytes >= 1 ? undefined : "empty CONTROLLER_STATE";
    case RecordTag.NAMESPACE_DATA:
      if ((streamFlags & StreamFlag.USER_DATA) === 0) return "NAMESPACE_DATA in a stream without USER_DATA";
      return lengthBytes >= NAMESPACE_DATA_HEADER_BYTES + 512
        ? undefined
        : `NAMESPACE_DATA of ${lengthBytes} bytes`;
    case RecordTag.CHANGED_LBA_RANGES:
      if ((streamFlags & StreamFlag.USER_DATA) === 0)
        return "CHANGED_LBA_RANGES in a stream without USER_DATA";
      return lengthBytes >= CHANGED_LBA_RANGES_HEADER_BYTES &&
        (lengthBytes - CHANGED_LBA_RANGES_HEADER_BYTES) % CHANGED_LBA_RANGE_ENTRY_BYTES === 0
        ? undefined
        : `CHANGED_LBA_RANGES of ${lengthBytes} bytes`;
    case RecordTag.STOP_COPY_SIZE_HINT:
      return lengthBytes === STOP_COPY_SIZE_HINT_BYTES
        ? undefined
        : `STOP_COPY_SIZE_HINT of ${lengthBytes} bytes`;
    case RecordTag.END: {
      const expected = version === STREAM_VERSION_PREVIOUS ? 0 : END_SUMMARY_BYTES;
      return lengthBytes === expected ? undefined : `END of ${lengthBytes} bytes in a v${version} stream`;
    }
  }
}

function isNsid(nsid: number): boolean {
  return nsid !== 0 && nsid !== 0xffffffff;
}

/** Decodes a known, non-END record payload (length already checked by `checkRecordLength`). */
export function decodeRecordPayload(
  tag: Exclude<RecordTag, typeof RecordTag.END>,
  p: Uint8Array,
): Decoded<StreamRecord> {
  const v = view(p);
  switch (tag) {
    case RecordTag.CONTROLLER_STATE:
      return { ok: true, value: { tag, state: p } };
    case RecordTag.NAMESPACE_DATA: {
      const nsid = v.getUint32(0, true);
      const nlb = v.getUint32(4, true);
      const slba = getU64(v, 8);
      const lbaBytes = v.getUint32(16, true);
      if (!isNsid(nsid)) return { ok: false, detail: `NAMESPACE_DATA nsid ${nsid}` };
      if (lbaBytes !== 512 && lbaBytes !== 4096)
        return { ok: false, detail: `NAMESPACE_DATA lbaBytes ${lbaBytes}` };
      if (v.getUint32(20, true) !== 0) return { ok: false, detail: "NAMESPACE_DATA reserved field set" };
      if (slba === undefined || nlb === 0 || !Number.isSafeInteger(slba + nlb)) {
        return { ok: false, detail: `NAMESPACE_DATA range slba ${slba ?? ">2^53"} nlb ${nlb}` };
      }
      if (p.byteLength - NAMESPACE_DATA_HEADER_BYTES !== nlb * lbaBytes) {
        return {
          ok: false,
          detail: `NAMESPACE_DATA ${nlb} × ${lbaBytes} bytes in a ${p.byteLength}-byte payload`,
        };
      }
      return {
        ok: true,
        value: { tag, nsid, slba, nlb, lbaBytes, data: p.subarray(NAMESPACE_DATA_HEADER_BYTES) },
      };
    }
    case RecordTag.CHANGED_LBA_RANGES: {
      const count = v.getUint32(0, true);
      if (v.getUint32(4, true) !== 0) return { ok: false, detail: "CHANGED_LBA_RANGES reserved field set" };
      if (CHANGED_LBA_RANGES_HEADER_BYTES + count * CHANGED_LBA_RANGE_ENTRY_BYTES !== p.byteLength) {
        return { ok: false, detail: `CHANGED_LBA_RANGES count ${count} in a ${p.byteLength}-byte payload` };
      }
      const ranges: NsLbaRange[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const at = CHANGED_LBA_RANGES_HEADER_BYTES + i * CHANGED_LBA_RANGE_ENTRY_BYTES;
        const nsid = v.getUint32(at, true);
        const nlb = v.getUint32(at + 4, true);
        const slba = getU64(v, at + 8);
        if (!isNsid(nsid) || nlb === 0 || slba === undefined || !Number.isSafeInteger(slba + nlb)) {
          return {
            ok: false,
            detail: `CHANGED_LBA_RANGES entry ${i}: nsid ${nsid} slba ${slba ?? ">2^53"} nlb ${nlb}`,
          };
        }
        ranges[i] = { nsid, slba, nlb };
      }
      return { ok: true, value: { tag, ranges } };
    }
    case RecordTag.STOP_COPY_SIZE_HINT: {
      const stopCopyBytes = getU64(v, 0);
      if (stopCopyBytes === undefined) return { ok: false, detail: "STOP_COPY_SIZE_HINT beyond 2^53" };
      return { ok: true, value: { tag, stopCopyBytes } };
    }
  }
}

export function decodeEndSummary(p: Uint8Array): Decoded<EndSummary> {
  const v = view(p);
  const streamBytes = getU64(v, 8);
  if (streamBytes === undefined) return { ok: false, detail: "END streamBytes beyond 2^53" };
  return {
    ok: true,
    value: { recordCount: v.getUint32(0, true), chainCrc32c: v.getUint32(4, true), streamBytes },
  };
}

export function encodeEndSummary(s: EndSummary): Uint8Array {
  const out = new Uint8Array(END_SUMMARY_BYTES);
  const v = view(out);
  v.setUint32(0, s.recordCount, true);
  v.setUint32(4, s.chainCrc32c, true);
  setU64(v, 8, s.streamBytes);
  return out;
}

/** Writes a NAMESPACE_DATA payload header (24 bytes) at `p[0..24)`. */
export function encodeNamespaceDataHeader(p: Uint8Array, r: Omit<NamespaceDataRecord, "tag" | "data">): void {
  const v = view(p);
  v.setUint32(0, r.nsid, true);
  v.setUint32(4, r.nlb, true);
  setU64(v, 8, r.slba);
  v.setUint32(16, r.lbaBytes, true);
  v.setUint32(20, 0, true);
}

export function encodeChangedLbaRanges(ranges: readonly NsLbaRange[]): Uint8Array {
  const out = new Uint8Array(CHANGED_LBA_RANGES_HEADER_BYTES + ranges.length * CHANGED_LBA_RANGE_ENTRY_BYTES);
  const v = view(out);
  v.setUint32(0, ranges.length, true);
  ranges.forEach((r, i) => {
    const at = CHANGED_LBA_RANGES_HEADER_BYTES + i * CHANGED_LBA_RANGE_ENTRY_BYTES;
    v.setUint32(at, r.nsid, true);
    v.setUint32(at + 4, r.nlb, true);
    setU64(v, at + 8, r.slba);
  });
  return out;
}

/** The 4 bytes a record or header CRC contributes to the chain CRC (u32 LE). */
export function u32le(value: number, scratch: Uint8Array = new Uint8Array(4)): Uint8Array {
  view(scratch).setUint32(0, value, true);
  return scratch;
}

function hex(n: number): string {
  return n.toString(16);
}
