/**
 * Storage figures (not a test; prints numbers): node --import tsx src/storage/storage.bench.ts
 * - memory store 4 KiB random read/write ops/s on a 64 GiB namespace (touching 1 GiB of it);
 * - file store 4 KiB random read/write ops/s on a sparse temp file;
 * - LbaChangeLog: records/s for 4 KiB writes (granularity 8 × 512 B), then drain time.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { BlockStore } from "./block-store.ts";
import { openFileBlockStore } from "./file-block-store.ts";
import { LbaChangeLog } from "./lba-change-log.ts";
import { createMemoryBlockStore } from "./memory-block-store.ts";

const GiB = 1024 ** 3;
const OPS = 1_000_000;

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function bench(label: string, ops: number, body: () => void): void {
  const t0 = process.hrtime.bigint();
  body();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${label}: ${(ops / seconds / 1e3).toFixed(0)} k ops/s (${(seconds * 1e3).toFixed(0)} ms)`);
}

function ioBench(name: string, store: BlockStore, spanBytes: number, ops: number): void {
  const buf = new Uint8Array(4096).fill(0x5a);
  const slots = spanBytes / 4096;
  const r = rng(7);
  bench(`${name} 4 KiB write`, ops, () => {
    for (let i = 0; i < ops; i++) store.write(Math.floor(r() * slots) * 4096, buf);
  });
  bench(`${name} 4 KiB write (again, chunks allocated)`, ops, () => {
    for (let i = 0; i < ops; i++) store.write(Math.floor(r() * slots) * 4096, buf);
  });
  bench(`${name} 4 KiB read`, ops, () => {
    for (let i = 0; i < ops; i++) store.read(Math.floor(r() * slots) * 4096, buf);
  });
}

const mem = createMemoryBlockStore({ lbaBytes: 512, lbaCount: (64 * GiB) / 512 });
ioBench("memory", mem, GiB, OPS);
console.log(`memory allocated: ${mem.allocatedChunkCount()} chunks`);
mem.close();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nvmig-bench-"));
try {
  const file = openFileBlockStore({
    path: path.join(dir, "ns.img"),
    lbaBytes: 512,
    lbaCount: GiB / 512,
    create: true,
  });
  ioBench("file", file, 256 * 1024 ** 2, OPS / 10);
  file.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

const log = new LbaChangeLog({ granularityLbas: 8, lbaCount: (64 * GiB) / 512 });
const r = rng(3);
const slots = (64 * GiB) / 4096;
bench("LbaChangeLog.record 4 KiB (random over 64 GiB)", OPS * 5, () => {
  for (let i = 0; i < OPS * 5; i++) log.record(Math.floor(r() * slots) * 8, 8);
});
let ranges = 0;
bench("LbaChangeLog.drain", 1, () => {
  ranges = log.drain().length;
});
console.log(`drained ${ranges} ranges`);
const seq = new LbaChangeLog({ granularityLbas: 8 });
bench("LbaChangeLog.record 128 KiB sequential", OPS * 5, () => {
  for (let i = 0; i < OPS * 5; i++) seq.record(i * 256, 256);
});
bench("LbaChangeLog.drain (one long range)", 1, () => {
  ranges = seq.drain().length;
});
console.log(`drained ${ranges} ranges`);
