/**
 * StreamWriter: produces a device migration stream (layout in `format.ts`) into a byte queue that the
 * saving data_fd (or a gRPC GetState stream) reads out in chunks of any size.
 *
 * Each record is framed and checksummed once, when written, into one buffer; `read` hands out views of
 * those buffers (copying only when a read spans two records). Passing arguments that violate the
 * layout (bad nsid, oversized record, writing after `end()`) is a bug of ours and throws RangeError.
 */
import { crc32c } from "./crc32c.ts";
import {
  encodeChangedLbaRanges,
  encodeEndSummary,
  encodeNamespaceDataHeader,
  encodeStreamHeaderBody,
  MAX_CHANGED_LBA_RANGES_PER_RECORD,
  MAX_RECORD_PAYLOAD_BYTES,
  NAMESPACE_DATA_HEADER_BYTES,
  type NsLbaRange,
  RECORD_HEADER_BYTES,
  RECORD_HEADER_CRC_COVERED_BYTES,
  RecordFlag,
  RecordOffset,
  RecordTag,
  STOP_COPY_SIZE_HINT_BYTES,
  STREAM_VERSION,
  STREAM_VERSION_PREVIOUS,
  StreamFlag,
  type StreamVersion,
  setU64,
  u32le,
} from "./format.ts";

export interface StreamWriterOptions {
  /** The producer's device-state format, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". Required. */
  formatUuid: string;
  /** Free-form producer identity (UTF-8, at most 1024 bytes). Default "". */
  identity?: string;
  /** Whether namespace data / changed ranges may follow (local storage). Default false. */
  userData?: boolean;
  /** Stream version to emit: 2 (current, default) or 1 (previous, for an older destination). */
  version?: StreamVersion;
}

/** Block geometry of a NAMESPACE_DATA record; `nlb` is a count (1-based). */
export interface NamespaceDataExtent {
  nsid: number;
  slba: number;
  nlb: number;
  lbaBytes: 512 | 4096;
}

const EMPTY = new Uint8Array(0);
const U32_MAX = 0xffffffff;

export class StreamWriter {
  readonly version: StreamVersion;
  readonly userData: boolean;
  private readonly queue: Uint8Array[] = [];
  private head = 0;
  private headOffset = 0;
  private pending = 0;
  private produced = 0;
  private recordCount = 0;
  private chainCrc = 0;
  private isEnded = false;
  private readonly scratch4 = new Uint8Array(4);

  constructor(options: StreamWriterOptions) {
    this.version = options.version ?? STREAM_VERSION;
    if (this.version !== STREAM_VERSION && this.version !== STREAM_VERSION_PREVIOUS) {
      throw new RangeError(`stream version ${this.version} cannot be written`);
    }
    this.userData = options.userData ?? false;
    const header = encodeStreamHeaderBody({
      version: this.version,
      flags: this.userData ? StreamFlag.USER_DATA : 0,
      formatUuid: options.formatUuid,
      identity: options.identity ?? "",
    });
    const crcAt = header.byteLength - 4;
    const headerCrc = crc32c(header, 0, 0, crcAt);
    new DataView(header.buffer).setUint32(crcAt, headerCrc, true);
    this.chainCrc = crc32c(u32le(headerCrc, this.scratch4));
    this.enqueue(header);
  }

  /** Bytes written into the queue and not yet read. */
  get pendingBytes(): number {
    return this.pending;
  }

  /** Bytes produced so far (read or not). */
  get producedBytes(): number {
    return this.produced;
  }

  /** True after `end()`. */
  get ended(): boolean {
    return this.isEnded;
  }

  /** True when END was written and everything was read (permanent end of stream). */
  get drained(): boolean {
    return this.isEnded && this.pending === 0;
  }

  /** Up to `maxBytes` (≥ 0) of the pending stream; an empty array when nothing is pending. */
  read(maxBytes: number): Uint8Array {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`read(${maxBytes})`);
    const n = Math.min(maxBytes, this.pending);
    if (n === 0) return EMPTY;
    const first = this.queue[this.head]!;
    let out: Uint8Array;
    if (first.byteLength - this.headOffset >= n) {
      out = first.subarray(this.headOffset, this.headOffset + n);
      this.consume(n);
    } else {
      out = new Uint8Array(n);
      let filled = 0;
      while (filled < n) {
        const seg = this.queue[this.head]!;
        const take = Math.min(n - filled, seg.byteLength - this.headOffset);
        out.set(seg.subarray(this.headOffset, this.headOffset + take), filled);
        filled += take;
        this.consume(take);
      }
    }
    return out;
  }

  /** CONTROLLER_STATE: the TP4159 controller state, 1 byte to 16 MiB, opaque here. */
  writeControllerState(state: Uint8Array): void {
    if (state.byteLength === 0) throw new RangeError("empty controller state");
    const rec = this.begin(RecordTag.CONTROLLER_STATE, 0, state.byteLength);
    rec.set(state, RECORD_HEADER_BYTES);
    this.commit(rec);
  }

  /** NAMESPACE_DATA from a buffer of exactly `nlb × lbaBytes` bytes. */
  writeNamespaceData(extent: NamespaceDataExtent, data: Uint8Array): void {
    if (data.byteLength !== extent.nlb * extent.lbaBytes) {
      throw new RangeError(`data of ${data.byteLength} bytes for ${extent.nlb} × ${extent.lbaBytes}`);
    }
    this.writeNamespaceDataFrom(extent, (dst) => dst.set(data));
  }

  /**
   * NAMESPACE_DATA whose data `fill` writes straight into the record (e.g. `store.read(offset, dst)`),
   * saving a copy. At most `maxNamespaceDataLbas(lbaBytes)` blocks per record.
   */
  writeNamespaceDataFrom(extent: NamespaceDataExtent, fill: (dst: Uint8Array) => void): void {
    const { nsid, slba, nlb, lbaBytes } = extent;
    if (!this.userData) throw new RangeError("NAMESPACE_DATA in a stream without userData");
    if (!Number.isInteger(nsid) || nsid < 1 || nsid >= U32_MAX) throw new RangeError(`nsid ${nsid}`);
    if (lbaBytes !== 512 && lbaBytes !== 4096) throw new RangeError(`lbaBytes ${lbaBytes}`);
    if (
      !Number.isInteger(nlb) ||
      nlb < 1 ||
      !Number.isSafeInteger(slba) ||
      slba < 0 ||
      !Number.isSafeInteger(slba + nlb)
    ) {
      throw new RangeError(`slba ${slba} nlb ${nlb}`);
    }
    const payloadBytes = NAMESPACE_DATA_HEADER_BYTES + nlb * lbaBytes;
    const rec = this.begin(RecordTag.NAMESPACE_DATA, 0, payloadBytes);
    encodeNamespaceDataHeader(rec.subarray(RECORD_HEADER_BYTES), extent);
    fill(rec.subarray(RECORD_HEADER_BYTES + NAMESPACE_DATA_HEADER_BYTES));
    this.commit(rec);
  }

  /**
   * CHANGED_LBA_RANGES. Ranges with more than 2^32 − 1 blocks are split; more ranges than one record
   * holds go into several records. An empty list writes nothing.
   */
  writeChangedLbaRanges(ranges: readonly NsLbaRange[]): void {
    if (!this.userData) throw new RangeError("CHANGED_LBA_RANGES in a stream without userData");
    const entries: NsLbaRange[] = [];
    for (const r of ranges) {
      if (!Number.isInteger(r.nsid) || r.nsid < 1 || r.nsid >= U32_MAX)
        throw new RangeError(`nsid ${r.nsid}`);
      if (!Number.isSafeInteger(r.slba) || r.slba < 0 || !Number.isSafeInteger(r.nlb) || r.nlb < 1) {
        throw new RangeError(`slba ${r.slba} nlb ${r.nlb}`);
      }
      if (!Number.isSafeInteger(r.slba + r.nlb))
        throw new RangeError(`slba ${r.slba} + nlb ${r.nlb} beyond 2^53`);
      for (let done = 0; done < r.nlb; done += U32_MAX) {
        entries.push({ nsid: r.nsid, slba: r.slba + done, nlb: Math.min(U32_MAX, r.nlb - done) });
      }
    }
    for (let i = 0; i < entries.length; i += MAX_CHANGED_LBA_RANGES_PER_RECORD) {
      const payload = encodeChangedLbaRanges(entries.slice(i, i + MAX_CHANGED_LBA_RANGES_PER_RECORD));
      const rec = this.begin(RecordTag.CHANGED_LBA_RANGES, 0, payload.byteLength);
      rec.set(payload, RECORD_HEADER_BYTES);
      this.commit(rec);
    }
  }

  /** STOP_COPY_SIZE_HINT (optional record): expected STOP_COPY bytes, so the destination can pre-size. */
  writeStopCopySizeHint(stopCopyBytes: number): void {
    if (!Number.isSafeInteger(stopCopyBytes) || stopCopyBytes < 0)
      throw new RangeError(`stopCopyBytes ${stopCopyBytes}`);
    const rec = this.begin(RecordTag.STOP_COPY_SIZE_HINT, RecordFlag.OPTIONAL, STOP_COPY_SIZE_HINT_BYTES);
    setU64(new DataView(rec.buffer), RECORD_HEADER_BYTES, stopCopyBytes);
    this.commit(rec);
  }

  /**
   * Any record, framed and checksummed as given — for extensions (new optional tags) and tests. The
   * payload is not checked against a known tag's layout.
   */
  writeRawRecord(tag: number, flags: number, payload: Uint8Array): void {
    if (!Number.isInteger(tag) || tag < 0 || tag > U32_MAX) throw new RangeError(`tag ${tag}`);
    if (!Number.isInteger(flags) || flags < 0 || flags > U32_MAX) throw new RangeError(`flags ${flags}`);
    const rec = this.begin(tag, flags, payload.byteLength);
    rec.set(payload, RECORD_HEADER_BYTES);
    this.commit(rec);
  }

  /** Writes END (with the summary in version 2). Nothing may be written afterwards. */
  end(): void {
    const summary =
      this.version === STREAM_VERSION_PREVIOUS
        ? EMPTY
        : encodeEndSummary({
            recordCount: this.recordCount,
            chainCrc32c: this.chainCrc,
            streamBytes: this.produced,
          });
    const rec = this.begin(RecordTag.END, 0, summary.byteLength);
    rec.set(summary, RECORD_HEADER_BYTES);
    this.commit(rec);
    this.isEnded = true;
  }

  /** A record buffer with its header (but not its CRC) filled in. */
  private begin(tag: number, flags: number, payloadBytes: number): Uint8Array {
    if (this.isEnded) throw new RangeError("stream already ended");
    if (payloadBytes > MAX_RECORD_PAYLOAD_BYTES) {
      throw new RangeError(`record payload of ${payloadBytes} bytes exceeds ${MAX_RECORD_PAYLOAD_BYTES}`);
    }
    const rec = new Uint8Array(RECORD_HEADER_BYTES + payloadBytes);
    const v = new DataView(rec.buffer);
    v.setUint32(RecordOffset.TAG, tag, true);
    v.setUint32(RecordOffset.FLAGS, flags, true);
    v.setUint32(RecordOffset.LENGTH_BYTES, payloadBytes, true);
    return rec;
  }

  private commit(rec: Uint8Array): void {
    let crc = crc32c(rec, 0, 0, RECORD_HEADER_CRC_COVERED_BYTES);
    crc = crc32c(rec, crc, RECORD_HEADER_BYTES);
    new DataView(rec.buffer).setUint32(RecordOffset.CRC32C, crc, true);
    this.chainCrc = crc32c(u32le(crc, this.scratch4), this.chainCrc);
    this.recordCount++;
    this.enqueue(rec);
  }

  private enqueue(bytes: Uint8Array): void {
    this.queue.push(bytes);
    this.pending += bytes.byteLength;
    this.produced += bytes.byteLength;
  }

  private consume(n: number): void {
    this.pending -= n;
    this.headOffset += n;
    if (this.headOffset === this.queue[this.head]!.byteLength) {
      this.head++;
      this.headOffset = 0;
      if (this.head >= 64 && this.head * 2 >= this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
    }
  }
}
