/**
 * Test helpers (not API): random record lists, stream building, chunked parsing and mutations.
 */
import fc from "fast-check";
import { RecordTag, type StreamRecord, type StreamVersion } from "./format.ts";
import { type ParseResult, StreamParser, type StreamParserOptions } from "./reader.ts";
import { StreamWriter } from "./writer.ts";

export const FORMAT_UUID = "6e766d69-6700-4d69-8772-000000000001";

export function pattern(lengthBytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) b[i] = (i * 29 + seed * 11 + 3) & 0xff;
  return b;
}

export function arbRecord(maxLbas = 3): fc.Arbitrary<StreamRecord> {
  const range = fc.record({
    nsid: fc.integer({ min: 1, max: 0xfffffffe }),
    slba: fc.nat({ max: 2 ** 40 }),
    nlb: fc.integer({ min: 1, max: 0xffffffff }),
  });
  return fc.oneof(
    fc
      .uint8Array({ minLength: 1, maxLength: 300 })
      .map((state): StreamRecord => ({ tag: RecordTag.CONTROLLER_STATE, state })),
    fc
      .record({
        nsid: fc.integer({ min: 1, max: 0xfffffffe }),
        slba: fc.nat({ max: 2 ** 45 }),
        nlb: fc.integer({ min: 1, max: maxLbas }),
        lbaBytes: fc.constantFrom(512 as const, 4096 as const),
        seed: fc.nat({ max: 255 }),
      })
      .map(
        (r): StreamRecord => ({
          tag: RecordTag.NAMESPACE_DATA,
          nsid: r.nsid,
          slba: r.slba,
          nlb: r.nlb,
          lbaBytes: r.lbaBytes,
          data: pattern(r.nlb * r.lbaBytes, r.seed),
        }),
      ),
    fc.array(range, { maxLength: 6 }).map(
      (ranges): StreamRecord => ({
        tag: RecordTag.CHANGED_LBA_RANGES,
        ranges: ranges.map((r) => ({ ...r })),
      }),
    ),
    fc.nat().map((stopCopyBytes): StreamRecord => ({ tag: RecordTag.STOP_COPY_SIZE_HINT, stopCopyBytes })),
  );
}

export function writeRecord(w: StreamWriter, r: StreamRecord): void {
  switch (r.tag) {
    case RecordTag.CONTROLLER_STATE:
      w.writeControllerState(r.state);
      break;
    case RecordTag.NAMESPACE_DATA:
      w.writeNamespaceData(r, r.data);
      break;
    case RecordTag.CHANGED_LBA_RANGES:
      w.writeChangedLbaRanges(r.ranges);
      break;
    case RecordTag.STOP_COPY_SIZE_HINT:
      w.writeStopCopySizeHint(r.stopCopyBytes);
      break;
  }
}

/** What a parser returns for `records` (an empty CHANGED_LBA_RANGES list writes no record). */
export function expectedRecords(records: readonly StreamRecord[]): StreamRecord[] {
  return records.filter((r) => r.tag !== RecordTag.CHANGED_LBA_RANGES || r.ranges.length > 0);
}

export function buildStream(
  records: readonly StreamRecord[],
  opts: { version?: StreamVersion; end?: boolean; identity?: string } = {},
): Uint8Array {
  const w = new StreamWriter({
    formatUuid: FORMAT_UUID,
    identity: opts.identity ?? "nvmig test",
    userData: true,
    version: opts.version,
  });
  for (const r of records) writeRecord(w, r);
  if (opts.end ?? true) w.end();
  return w.read(w.pendingBytes);
}

/** Splits `bytes` at the given sizes (cycled; 0 means 1) and feeds them; returns the verdict. */
export function parseChunked(
  bytes: Uint8Array,
  sizes: readonly number[] = [bytes.byteLength],
  options?: StreamParserOptions,
  onPush?: (p: StreamParser) => void,
): ParseResult {
  const p = new StreamParser(options);
  let at = 0;
  let k = 0;
  while (at < bytes.byteLength) {
    const size = Math.max(1, sizes.length === 0 ? bytes.byteLength : sizes[k++ % sizes.length]!);
    p.push(bytes.subarray(at, at + size));
    onPush?.(p);
    at += size;
  }
  return p.finish();
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
