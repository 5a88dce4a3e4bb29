/**
 * A readable view of a device migration stream (`nvmig inspect`, bug reports): the stream header, a
 * list of its records (offset, tag, size, the fields each tag carries — namespace data is summarised,
 * never copied), per-tag totals, the END summary, and every CONTROLLER_STATE record decoded with
 * `inspectControllerState`.
 *
 * The stream is validated exactly as a destination would (`StreamParser`): a stream it refuses is
 * `{ error }`, with the parser's code, offset and reason. Bytes may be pushed in chunks of any size, so
 * a multi-GiB stream is inspected in bounded memory: records beyond `maxListedRecords` are counted but
 * not listed (CONTROLLER_STATE records are always listed). Never throws on foreign bytes.
 */
import {
  type ControllerStateInspectResult,
  hex,
  inspectControllerState,
} from "../../controller/migration/inspect.ts";
import {
  CHANGED_LBA_RANGE_ENTRY_BYTES,
  CHANGED_LBA_RANGES_HEADER_BYTES,
  type EndSummary,
  NAMESPACE_DATA_HEADER_BYTES,
  type NsLbaRange,
  RECORD_HEADER_BYTES,
  RecordTag,
  STOP_COPY_SIZE_HINT_BYTES,
  STREAM_MAGIC,
  StreamFlag,
  type StreamRecord,
} from "./format.ts";
import { type SkippedRecord, StreamParser } from "./reader.ts";

/** Default of `maxListedRecords`. */
export const DEFAULT_MAX_LISTED_RECORDS = 256;

export interface StreamInspectOptions {
  /**
   * Most records listed individually (CONTROLLER_STATE records are listed regardless). Default 256;
   * range 0..2^53 − 1. Every record is counted in `countsByTag` either way.
   */
  maxListedRecords?: number;
}

interface RecordBase {
  /** Position in the stream, 0-based, counting known records only (END and skipped ones excluded). */
  index: number;
  /** Stream offset of the record header, bytes. */
  offsetBytes: number;
  tag: number;
  /** Payload length, bytes (header not included). */
  payloadBytes: number;
}

export type InspectedRecord =
  | (RecordBase & { tagName: "CONTROLLER_STATE"; controllerState: ControllerStateInspectResult })
  | (RecordBase & {
      tagName: "NAMESPACE_DATA";
      nsid: number;
      slba: number;
      /** Number of blocks (1-based count). */
      nlb: number;
      lbaBytes: number;
      dataBytes: number;
    })
  | (RecordBase & { tagName: "CHANGED_LBA_RANGES"; count: number; ranges: NsLbaRange[] })
  | (RecordBase & { tagName: "STOP_COPY_SIZE_HINT"; stopCopyBytes: number });

export interface StreamInspection {
  kind: "nvmig-migration-stream";
  /** Stream length, bytes. */
  bytes: number;
  header: {
    version: number;
    flags: { raw: string; userData: boolean };
    formatUuid: string;
    identity: string;
  };
  /** Known records before END (the listed ones are in `records`). */
  recordCount: number;
  /** True when some records were counted but not listed (see `maxListedRecords`). */
  recordsTruncated: boolean;
  records: InspectedRecord[];
  /** Records and payload bytes per tag name. */
  countsByTag: Record<string, { records: number; payloadBytes: number }>;
  /** Unknown optional records that were skipped (the first 64), and how many in all. */
  skipped: SkippedRecord[];
  skippedCount: number;
  /** END's summary; null for a version 1 stream (its END is empty). */
  end: EndSummary | null;
}

export type StreamInspectResult = StreamInspection | { error: string };

/** True when `bytes` starts with the stream magic "NVMIGSTR". */
export function looksLikeMigrationStream(bytes: Uint8Array): boolean {
  if (bytes.byteLength < STREAM_MAGIC.byteLength) return false;
  return STREAM_MAGIC.every((b, i) => bytes[i] === b);
}

function payloadBytesOf(r: StreamRecord): number {
  switch (r.tag) {
    case RecordTag.CONTROLLER_STATE:
      return r.state.byteLength;
    case RecordTag.NAMESPACE_DATA:
      return NAMESPACE_DATA_HEADER_BYTES + r.data.byteLength;
    case RecordTag.CHANGED_LBA_RANGES:
      return CHANGED_LBA_RANGES_HEADER_BYTES + r.ranges.length * CHANGED_LBA_RANGE_ENTRY_BYTES;
    case RecordTag.STOP_COPY_SIZE_HINT:
      return STOP_COPY_SIZE_HINT_BYTES;
  }
}

const tagNames: Record<number, string> = Object.fromEntries(
  Object.entries(RecordTag).map(([name, value]) => [value, name]),
);

function describe(r: StreamRecord, base: RecordBase): InspectedRecord {
  switch (r.tag) {
    case RecordTag.CONTROLLER_STATE:
      return { ...base, tagName: "CONTROLLER_STATE", controllerState: inspectControllerState(r.state) };
    case RecordTag.NAMESPACE_DATA:
      return {
        ...base,
        tagName: "NAMESPACE_DATA",
        nsid: r.nsid,
        slba: r.slba,
        nlb: r.nlb,
        lbaBytes: r.lbaBytes,
        dataBytes: r.data.byteLength,
      };
    case RecordTag.CHANGED_LBA_RANGES:
      return {
        ...base,
        tagName: "CHANGED_LBA_RANGES",
        count: r.ranges.length,
        ranges: r.ranges.map((x) => ({ ...x })),
      };
    case RecordTag.STOP_COPY_SIZE_HINT:
      return { ...base, tagName: "STOP_COPY_SIZE_HINT", stopCopyBytes: r.stopCopyBytes };
  }
}

/** Inspects a stream pushed in chunks; `finish()` gives the result (the same one on every call). */
export class StreamInspector {
  private readonly parser: StreamParser;
  private readonly maxListed: number;
  private readonly records: InspectedRecord[] = [];
  private readonly counts: Record<string, { records: number; payloadBytes: number }> = {};
  private recordCount = 0;
  private truncated = false;
  private result: StreamInspectResult | undefined;

  constructor(options: StreamInspectOptions = {}) {
    const max = options.maxListedRecords ?? DEFAULT_MAX_LISTED_RECORDS;
    if (!Number.isSafeInteger(max) || max < 0)
      throw new RangeError(`maxListedRecords must be a non-negative integer, got ${max}`);
    this.maxListed = max;
    this.parser = new StreamParser({ onRecord: (r) => this.onRecord(r) });
  }

  /** Feeds the next bytes (any length). Returns false once the stream has been refused. */
  push(chunk: Uint8Array): boolean {
    if (this.result !== undefined) throw new Error("StreamInspector.push after finish()");
    return this.parser.push(chunk) === undefined;
  }

  finish(): StreamInspectResult {
    if (this.result !== undefined) return this.result;
    const p = this.parser.finish();
    if (!p.ok) {
      this.records.length = 0;
      this.result = { error: `device migration stream refused: ${p.error.message}` };
      return this.result;
    }
    this.result = {
      kind: "nvmig-migration-stream",
      bytes: p.streamBytes,
      header: {
        version: p.header.version,
        flags: {
          raw: hex(p.header.flags, 4),
          userData: (p.header.flags & StreamFlag.USER_DATA) !== 0,
        },
        formatUuid: p.header.formatUuid,
        identity: p.header.identity,
      },
      recordCount: this.recordCount,
      recordsTruncated: this.truncated,
      records: this.records,
      countsByTag: this.counts,
      skipped: p.skipped,
      skippedCount: p.skippedCount,
      end: p.end ?? null,
    };
    return this.result;
  }

  private onRecord(r: StreamRecord): void {
    const payloadBytes = payloadBytesOf(r);
    const tagName = tagNames[r.tag] ?? String(r.tag);
    const count = this.counts[tagName] ?? { records: 0, payloadBytes: 0 };
    count.records++;
    count.payloadBytes += payloadBytes;
    this.counts[tagName] = count;
    const index = this.recordCount++;
    if (r.tag !== RecordTag.CONTROLLER_STATE && this.records.length >= this.maxListed) {
      this.truncated = true;
      return;
    }
    const offsetBytes = this.parser.offsetBytes - RECORD_HEADER_BYTES - payloadBytes;
    this.records.push(describe(r, { index, offsetBytes, tag: r.tag, payloadBytes }));
  }
}

/** Inspects a whole stream held in memory. */
export function inspectMigrationStream(
  bytes: Uint8Array,
  options: StreamInspectOptions = {},
): StreamInspectResult {
  const inspector = new StreamInspector(options);
  inspector.push(bytes);
  return inspector.finish();
}
