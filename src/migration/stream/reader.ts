/**
 * StreamParser: the destination side of the device migration stream (layout, sequence diagram and
 * compatibility rule in `format.ts`). Bytes arrive with arbitrary chunk boundaries (`push`); each
 * record is validated as soon as it is complete (length bound and tag when its header is complete,
 * before its payload is allocated; CRC and payload layout when it ends). `finish()` gives the verdict.
 *
 * Nothing is applied here: the caller applies the records only after `finish()` returned ok — so a
 * foreign, truncated or corrupt stream changes nothing. A bad stream is a `StreamError` value, never an
 * exception; the first error is final.
 *
 * Memory: the parser holds at most one record payload being received (≤ `maxRecordPayloadBytes`) plus
 * the payloads it retains for `finish()` (≤ `maxRetainedBytes`), and a fixed 1 KiB header scratch.
 * Unknown optional records are checksummed and dropped without being buffered. `bytesHeld()` reports
 * the payload bytes held now; `peakBytesHeld()` the most held at once.
 */
import { crc32c } from "./crc32c.ts";
import {
  checkRecordFlags,
  checkRecordLength,
  decodeEndSummary,
  decodeRecordPayload,
  decodeStreamHeader,
  decodeStreamHeaderFixed,
  type EndSummary,
  isAcceptedVersion,
  isKnownTag,
  MAX_IDENTITY_BYTES,
  MAX_RECORD_PAYLOAD_BYTES,
  RECORD_HEADER_BYTES,
  RECORD_HEADER_CRC_COVERED_BYTES,
  RecordFlag,
  RecordOffset,
  RecordTag,
  STREAM_HEADER_FIXED_BYTES,
  STREAM_MAGIC,
  STREAM_VERSION_PREVIOUS,
  type StreamHeader,
  StreamHeaderOffset,
  type StreamRecord,
  type StreamVersion,
  u32le,
} from "./format.ts";
import { StreamError, type StreamErrorCode } from "./stream-error.ts";

export interface StreamParserOptions {
  /**
   * Largest record payload accepted, in bytes. Default and maximum 16 MiB (MAX_RECORD_PAYLOAD_BYTES);
   * minimum 0. Mirrors a device's maximum record size (mlx5 answers ENOMEM beyond it).
   */
  maxRecordPayloadBytes?: number;
  /**
   * Most payload bytes kept for `finish()` across all records, in bytes. Default 1 GiB; 0 to 2^53 − 1.
   * Ignored when `onRecord` is given (nothing is retained then).
   */
  maxRetainedBytes?: number;
  /**
   * Receives each record as soon as it validated, instead of the parser retaining it (e.g. to stage
   * namespace data in a scratch store). The stream may still fail later: apply nothing before
   * `finish()` returns ok. Default: records are retained and returned by `finish()`.
   */
  onRecord?: (record: StreamRecord) => void;
}

/** A record of an unknown optional tag that was skipped. */
export interface SkippedRecord {
  tag: number;
  lengthBytes: number;
  offsetBytes: number;
}

export interface ParsedStream {
  ok: true;
  header: StreamHeader;
  /** Records in stream order (empty when `onRecord` was given). END is not among them. */
  records: StreamRecord[];
  /** The first MAX_LISTED_SKIPPED_RECORDS (64) skipped records, for logs. */
  skipped: SkippedRecord[];
  /** How many records were skipped in all. */
  skippedCount: number;
  /** END's summary; undefined for a version 1 stream. */
  end: EndSummary | undefined;
  /** Total stream length in bytes. */
  streamBytes: number;
}

export type ParseResult = ParsedStream | { ok: false; error: StreamError };

export const DEFAULT_MAX_RETAINED_BYTES = 1024 ** 3;
export const MAX_LISTED_SKIPPED_RECORDS = 64;

type ParserState = "stream-header" | "record-header" | "record-payload" | "ended" | "failed";

export class StreamParser {
  private readonly maxRecordPayloadBytes: number;
  private readonly maxRetainedBytes: number;
  private readonly onRecord: ((record: StreamRecord) => void) | undefined;

  private state: ParserState = "stream-header";
  private error: StreamError | undefined;
  private finished: ParseResult | undefined;
  /** Stream bytes consumed so far. */
  private offset = 0;

  // stream header
  private readonly headerBuf = new Uint8Array(STREAM_HEADER_FIXED_BYTES + MAX_IDENTITY_BYTES + 4);
  private headerFill = 0;
  private headerWant = STREAM_HEADER_FIXED_BYTES;
  private version: StreamVersion = STREAM_VERSION_PREVIOUS;
  private streamFlags = 0;
  private header: StreamHeader | undefined;

  // current record
  private readonly recHeader = new Uint8Array(RECORD_HEADER_BYTES);
  private readonly recHeaderView = new DataView(this.recHeader.buffer);
  private recHeaderFill = 0;
  private recStart = 0;
  private recTag = 0;
  private recLength = 0;
  private recCrcExpected = 0;
  private recCrc = 0;
  private payload: Uint8Array | undefined;
  private payloadFill = 0;

  // stream-wide
  private readonly records: StreamRecord[] = [];
  private readonly skipped: SkippedRecord[] = [];
  private skippedCount = 0;
  private recordCount = 0;
  private chainCrc = 0;
  private retainedBytes = 0;
  private peakHeld = 0;
  private end: EndSummary | undefined;
  private readonly scratch4 = new Uint8Array(4);

  constructor(options: StreamParserOptions = {}) {
    const maxRecord = options.maxRecordPayloadBytes ?? MAX_RECORD_PAYLOAD_BYTES;
    if (!Number.isInteger(maxRecord) || maxRecord < 0 || maxRecord > MAX_RECORD_PAYLOAD_BYTES) {
      throw new RangeError(
        `maxRecordPayloadBytes must be in [0, ${MAX_RECORD_PAYLOAD_BYTES}], got ${maxRecord}`,
      );
    }
    const maxRetained = options.maxRetainedBytes ?? DEFAULT_MAX_RETAINED_BYTES;
    if (!Number.isSafeInteger(maxRetained) || maxRetained < 0) {
      throw new RangeError(`maxRetainedBytes must be a non-negative integer, got ${maxRetained}`);
    }
    this.maxRecordPayloadBytes = maxRecord;
    this.maxRetainedBytes = maxRetained;
    this.onRecord = options.onRecord;
  }

  /** Payload bytes held now (record being received + retained records). */
  bytesHeld(): number {
    return this.retainedBytes + (this.payload?.byteLength ?? 0);
  }

  /** The most payload bytes held at once so far. */
  peakBytesHeld(): number {
    return this.peakHeld;
  }

  /** Stream bytes accepted so far. */
  get offsetBytes(): number {
    return this.offset;
  }

  /**
   * Feeds the next bytes (any length, any boundary). Returns the stream's error once it has failed
   * (the same error on every later call), else undefined. The chunk is not retained.
   */
  push(chunk: Uint8Array): StreamError | undefined {
    if (this.finished !== undefined) throw new Error("StreamParser.push after finish()");
    let i = 0;
    while (i < chunk.byteLength && this.error === undefined) {
      switch (this.state) {
        case "stream-header":
          i = this.feedStreamHeader(chunk, i);
          break;
        case "record-header":
          i = this.feedRecordHeader(chunk, i);
          break;
        case "record-payload":
          i = this.feedPayload(chunk, i);
          break;
        case "ended":
          this.fail("data-after-end", `${chunk.byteLength - i} byte(s) after END`);
          break;
        case "failed":
          return this.error;
      }
    }
    return this.error;
  }

  /** Ends the input and returns the verdict (the same one on every call). */
  finish(): ParseResult {
    if (this.finished !== undefined) return this.finished;
    if (this.error === undefined && this.state !== "ended") {
      if (this.state === "record-header" && this.recHeaderFill === 0) {
        this.fail("missing-end", "stream ended on a record boundary without END");
      } else {
        this.fail(
          "truncated",
          `stream ended inside ${this.state === "stream-header" ? "the header" : "a record"}`,
        );
      }
    }
    if (this.error !== undefined) {
      this.records.length = 0;
      this.retainedBytes = 0;
      this.payload = undefined;
      this.finished = { ok: false, error: this.error };
    } else {
      this.finished = {
        ok: true,
        header: this.header!,
        records: this.records,
        skipped: this.skipped,
        skippedCount: this.skippedCount,
        end: this.end,
        streamBytes: this.offset,
      };
    }
    return this.finished;
  }

  // ── states ────────────────────────────────────────────────────────────────────────────────────────

  private feedStreamHeader(chunk: Uint8Array, i: number): number {
    const before = this.headerFill;
    const n = Math.min(this.headerWant - before, chunk.byteLength - i);
    this.headerBuf.set(chunk.subarray(i, i + n), before);
    this.headerFill += n;
    this.offset += n;
    const fill = this.headerFill;
    const b = this.headerBuf;

    for (let k = before; k < Math.min(fill, STREAM_MAGIC.byteLength); k++) {
      if (b[k] !== STREAM_MAGIC[k]) {
        this.fail("bad-magic", "not a device migration stream (magic is not NVMIGSTR)", k);
        return i + n;
      }
    }
    const versionEnd = StreamHeaderOffset.VERSION + 2;
    if (before < versionEnd && fill >= versionEnd) {
      const version = b[StreamHeaderOffset.VERSION]! | (b[StreamHeaderOffset.VERSION + 1]! << 8);
      if (!isAcceptedVersion(version)) {
        this.fail("unsupported-version", `stream version ${version}; this build accepts 2 and 1`);
        return i + n;
      }
      this.version = version;
    }
    if (before < STREAM_HEADER_FIXED_BYTES && fill === STREAM_HEADER_FIXED_BYTES) {
      const fixed = decodeStreamHeaderFixed(b.subarray(0, STREAM_HEADER_FIXED_BYTES));
      if (!fixed.ok) {
        this.fail("malformed-record", fixed.detail);
        return i + n;
      }
      this.streamFlags = fixed.value.flags;
      this.headerWant = STREAM_HEADER_FIXED_BYTES + fixed.value.identityBytes + 4;
    }
    if (fill === this.headerWant && fill > STREAM_HEADER_FIXED_BYTES) {
      const crcAt = fill - 4;
      const expected =
        (b[crcAt]! | (b[crcAt + 1]! << 8) | (b[crcAt + 2]! << 16) | (b[crcAt + 3]! << 24)) >>> 0;
      const actual = crc32c(b, 0, 0, crcAt);
      if (actual !== expected) {
        this.fail("crc-mismatch", `stream header CRC 0x${actual.toString(16)} ≠ 0x${expected.toString(16)}`);
        return i + n;
      }
      const header = decodeStreamHeader(b.subarray(0, crcAt), this.version, this.streamFlags);
      if (!header.ok) {
        this.fail("malformed-record", header.detail);
        return i + n;
      }
      this.header = header.value;
      this.chainCrc = crc32c(u32le(expected, this.scratch4));
      this.state = "record-header";
    }
    return i + n;
  }

  private feedRecordHeader(chunk: Uint8Array, i: number): number {
    if (this.recHeaderFill === 0) this.recStart = this.offset;
    const n = Math.min(RECORD_HEADER_BYTES - this.recHeaderFill, chunk.byteLength - i);
    this.recHeader.set(chunk.subarray(i, i + n), this.recHeaderFill);
    this.recHeaderFill += n;
    this.offset += n;
    if (this.recHeaderFill < RECORD_HEADER_BYTES) return i + n;
    this.recHeaderFill = 0;

    const v = this.recHeaderView;
    const tag = v.getUint32(RecordOffset.TAG, true);
    const flags = v.getUint32(RecordOffset.FLAGS, true);
    const lengthBytes = v.getUint32(RecordOffset.LENGTH_BYTES, true);
    this.recTag = tag;
    this.recLength = lengthBytes;
    this.recCrcExpected = v.getUint32(RecordOffset.CRC32C, true);

    const badFlags = checkRecordFlags(flags);
    if (badFlags !== undefined) return this.failAt(i + n, "malformed-record", badFlags);
    if (tag === 0) return this.failAt(i + n, "malformed-record", "record tag 0 is reserved");
    if (lengthBytes > this.maxRecordPayloadBytes) {
      return this.failAt(
        i + n,
        "record-too-large",
        `record tag ${tag} declares ${lengthBytes} bytes; the limit is ${this.maxRecordPayloadBytes}`,
      );
    }
    let retain = false;
    if (isKnownTag(tag)) {
      const badLength = checkRecordLength(tag, lengthBytes, this.version, this.streamFlags);
      if (badLength !== undefined) return this.failAt(i + n, "malformed-record", badLength);
      retain = tag !== RecordTag.END && this.onRecord === undefined;
      if (retain && this.retainedBytes + lengthBytes > this.maxRetainedBytes) {
        return this.failAt(
          i + n,
          "record-too-large",
          `retaining ${lengthBytes} more bytes would exceed maxRetainedBytes ${this.maxRetainedBytes}`,
        );
      }
      this.payload = new Uint8Array(lengthBytes);
      this.peakHeld = Math.max(this.peakHeld, this.bytesHeld());
    } else if ((flags & RecordFlag.OPTIONAL) !== 0) {
      this.payload = undefined; // skipped: checksummed, not buffered
    } else {
      return this.failAt(i + n, "unknown-mandatory-tag", `record tag ${tag} is unknown and not optional`);
    }
    this.payloadFill = 0;
    this.recCrc = crc32c(this.recHeader, 0, 0, RECORD_HEADER_CRC_COVERED_BYTES);
    this.state = "record-payload";
    if (lengthBytes === 0) this.completeRecord();
    return i + n;
  }

  private feedPayload(chunk: Uint8Array, i: number): number {
    const n = Math.min(this.recLength - this.payloadFill, chunk.byteLength - i);
    this.recCrc = crc32c(chunk, this.recCrc, i, i + n);
    if (this.payload !== undefined) this.payload.set(chunk.subarray(i, i + n), this.payloadFill);
    this.payloadFill += n;
    this.offset += n;
    if (this.payloadFill === this.recLength) this.completeRecord();
    return i + n;
  }

  private completeRecord(): void {
    const tag = this.recTag;
    const at = this.recStart;
    if (this.recCrc !== this.recCrcExpected) {
      this.fail(
        "crc-mismatch",
        `record tag ${tag} CRC 0x${this.recCrc.toString(16)} ≠ 0x${this.recCrcExpected.toString(16)}`,
        at,
      );
      return;
    }
    const payload = this.payload;
    this.payload = undefined;
    this.state = "record-header";

    if (!isKnownTag(tag)) {
      if (this.skippedCount < MAX_LISTED_SKIPPED_RECORDS) {
        this.skipped.push({ tag, lengthBytes: this.recLength, offsetBytes: at });
      }
      this.skippedCount++;
    } else if (tag === RecordTag.END) {
      this.completeEnd(payload!, at);
      return;
    } else {
      const decoded = decodeRecordPayload(tag, payload!);
      if (!decoded.ok) {
        this.fail("malformed-record", decoded.detail, at);
        return;
      }
      if (this.onRecord !== undefined) {
        this.onRecord(decoded.value);
      } else {
        this.records.push(decoded.value);
        this.retainedBytes += payload!.byteLength;
      }
    }
    this.recordCount++;
    this.chainCrc = crc32c(u32le(this.recCrcExpected, this.scratch4), this.chainCrc);
  }

  private completeEnd(payload: Uint8Array, at: number): void {
    this.state = "ended";
    if (this.version === STREAM_VERSION_PREVIOUS) return;
    const summary = decodeEndSummary(payload);
    if (!summary.ok) {
      this.fail("malformed-record", summary.detail, at);
      return;
    }
    const s = summary.value;
    if (s.chainCrc32c !== this.chainCrc) {
      this.fail(
        "crc-mismatch",
        `END chain CRC 0x${s.chainCrc32c.toString(16)} ≠ 0x${this.chainCrc.toString(16)}: records missing, repeated or reordered`,
        at,
      );
      return;
    }
    if (s.recordCount !== this.recordCount || s.streamBytes !== at) {
      this.fail(
        "malformed-record",
        `END says ${s.recordCount} records / ${s.streamBytes} bytes, stream had ${this.recordCount} / ${at}`,
        at,
      );
      return;
    }
    this.end = s;
  }

  private failAt(next: number, code: StreamErrorCode, detail: string): number {
    this.fail(code, detail, this.recStart);
    return next;
  }

  private fail(code: StreamErrorCode, detail: string, offsetBytes = this.offset): void {
    if (this.error !== undefined) return;
    this.error = new StreamError(code, detail, offsetBytes);
    this.state = "failed";
    this.payload = undefined;
  }
}
