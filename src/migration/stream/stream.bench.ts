/**
 * Stream figures (not a test; prints numbers): node --import tsx src/migration/stream/stream.bench.ts
 * CRC-32C throughput, and writing + parsing 256 MiB of NAMESPACE_DATA (1 MiB records) read out and
 * pushed in 64 KiB chunks.
 */
import { crc32c } from "./crc32c.ts";
import { StreamParser } from "./reader.ts";
import { StreamWriter } from "./writer.ts";

const MiB = 1024 * 1024;
const TOTAL_BYTES = 256 * MiB;

function timed<T>(label: string, bytes: number, body: () => T): T {
  const t0 = process.hrtime.bigint();
  const out = body();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${label}: ${(bytes / MiB / seconds).toFixed(0)} MiB/s (${(seconds * 1e3).toFixed(0)} ms)`);
  return out;
}

const buf = new Uint8Array(64 * MiB).map((_, i) => (i * 7) & 0xff);
crc32c(buf);
timed("crc32c", buf.byteLength, () => crc32c(buf));

const block = new Uint8Array(MiB).map((_, i) => (i * 13) & 0xff);
const w = new StreamWriter({ formatUuid: "6e766d69-6700-4d69-8772-000000000001", userData: true });
const chunks: Uint8Array[] = [];
timed("write + read out (64 KiB reads)", TOTAL_BYTES, () => {
  for (let slba = 0; slba < TOTAL_BYTES / 512; slba += MiB / 512) {
    w.writeNamespaceData({ nsid: 1, slba, nlb: MiB / 512, lbaBytes: 512 }, block);
    while (w.pendingBytes > 0) chunks.push(w.read(64 * 1024));
  }
  w.end();
  chunks.push(w.read(w.pendingBytes));
});

const p = new StreamParser({ onRecord: () => {} });
const result = timed("parse (64 KiB pushes, onRecord)", TOTAL_BYTES, () => {
  for (const c of chunks) p.push(c);
  return p.finish();
});
console.log(`parse ok: ${result.ok}`);
