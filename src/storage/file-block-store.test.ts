import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, mock, test } from "node:test";
import fc from "fast-check";
import { openFileBlockStore } from "./file-block-store.ts";
import { StorageError } from "./storage-error.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nvmig-fbs-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function tmpPath(): string {
  return path.join(dir, `ns${fileNo++}.img`);
}

function pattern(lengthBytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) b[i] = (i * 13 + seed * 5 + 1) & 0xff || 1;
  return b;
}

/** Disk usage in bytes (st_blocks is in 512-byte units). */
function diskBytes(p: string): number {
  return fs.statSync(p).blocks * 512;
}

test("create sizes a sparse file: 1 GiB apparent, (almost) nothing on disk", () => {
  const p = tmpPath();
  const s = openFileBlockStore({ path: p, lbaBytes: 4096, lbaCount: GiB / 4096, create: true });
  assert.equal(fs.statSync(p).size, GiB);
  assert.ok(diskBytes(p) < 64 * 1024, `disk usage ${diskBytes(p)}`);
  const src = pattern(8192, 1);
  s.write(512 * MiB, src);
  s.write(GiB - 4096, src.subarray(0, 4096));
  const dst = new Uint8Array(8192);
  s.read(512 * MiB, dst);
  assert.deepEqual(dst, src);
  const unwritten = new Uint8Array(4096).fill(7);
  s.read(100 * MiB, unwritten);
  assert.ok(unwritten.every((b) => b === 0));
  assert.ok(diskBytes(p) < 1 * MiB, `disk usage ${diskBytes(p)}`);
  s.close();
});

test("zeroing never-written space keeps the file sparse; zeroing data clears it", () => {
  const p = tmpPath();
  const s = openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: (64 * MiB) / 512, create: true });
  const before = diskBytes(p);
  s.deallocate(0, 64 * MiB);
  s.writeZeroes(MiB, 32 * MiB);
  assert.equal(diskBytes(p), before);
  s.write(3 * MiB + 512, pattern(4096, 2));
  s.writeZeroes(3 * MiB, 8192);
  const dst = new Uint8Array(8192).fill(9);
  s.read(3 * MiB, dst);
  assert.ok(dst.every((b) => b === 0));
  s.write(5 * MiB, pattern(1024, 3));
  s.deallocate(5 * MiB + 512, 512);
  s.read(5 * MiB, dst.subarray(0, 1024));
  assert.deepEqual(dst.subarray(0, 512), pattern(1024, 3).subarray(0, 512));
  assert.ok(dst.subarray(512, 1024).every((b) => b === 0));
  assert.ok(diskBytes(p) < 2 * MiB, `disk usage ${diskBytes(p)}`);
  s.close();
});

test("model check: random operations agree with a flat buffer", () => {
  const p = tmpPath();
  const capacityBytes = 256 * 512;
  const s = openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: 256, create: true });
  const model = new Uint8Array(capacityBytes);
  const op = fc.record({
    kind: fc.constantFrom("write", "zero", "dealloc", "read"),
    offsetBytes: fc.integer({ min: 0, max: capacityBytes }),
    lengthBytes: fc.integer({ min: 0, max: 200 * 1024 }),
    seed: fc.integer({ min: 0, max: 255 }),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 12 }), (ops) => {
      for (const o of ops) {
        const len = Math.min(o.lengthBytes, capacityBytes - o.offsetBytes);
        if (o.kind === "write") {
          const src = pattern(len, o.seed);
          s.write(o.offsetBytes, src);
          model.set(src, o.offsetBytes);
        } else if (o.kind === "read") {
          const dst = new Uint8Array(len);
          s.read(o.offsetBytes, dst);
          assert.deepEqual(dst, model.subarray(o.offsetBytes, o.offsetBytes + len));
        } else {
          if (o.kind === "zero") s.writeZeroes(o.offsetBytes, len);
          else s.deallocate(o.offsetBytes, len);
          model.fill(0, o.offsetBytes, o.offsetBytes + len);
        }
      }
      const all = new Uint8Array(capacityBytes);
      s.read(0, all);
      assert.deepEqual(all, model);
    }),
    { numRuns: 100 },
  );
  s.close();
});

test("flush calls fsync on the file and resolves", async () => {
  const p = tmpPath();
  const s = openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: 64, create: true });
  const fsync = mock.method(fs, "fsync");
  try {
    s.write(0, pattern(512, 4));
    await s.flush();
    assert.equal(fsync.mock.callCount(), 1);
    assert.equal(typeof fsync.mock.calls[0]?.arguments[0], "number");
  } finally {
    fsync.mock.restore();
    s.close();
  }
});

test("close during a flush: the flush completes, then the descriptor is closed once", async () => {
  const p = tmpPath();
  const s = openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: 64, create: true });
  const closeSync = mock.method(fs, "closeSync");
  try {
    const pending = s.flush();
    s.close();
    assert.equal(closeSync.mock.callCount(), 0);
    await pending;
    assert.equal(closeSync.mock.callCount(), 1);
    s.close();
    assert.equal(closeSync.mock.callCount(), 1);
  } finally {
    closeSync.mock.restore();
  }
  await assert.rejects(s.flush(), (e) => StorageError.is(e, "closed"));
  assert.throws(
    () => s.write(0, new Uint8Array(1)),
    (e) => StorageError.is(e, "closed"),
  );
});

test("reopening sees the data; create on an existing file of the right size keeps it", () => {
  const p = tmpPath();
  const geometry = { path: p, lbaBytes: 4096, lbaCount: 1024 } as const;
  const a = openFileBlockStore({ ...geometry, create: true });
  a.write(4096 * 100, pattern(4096, 5));
  a.close();
  for (const create of [false, true]) {
    const b = openFileBlockStore({ ...geometry, create });
    const dst = new Uint8Array(4096);
    b.read(4096 * 100, dst);
    assert.deepEqual(dst, pattern(4096, 5));
    b.close();
  }
});

test("open errors: missing file, wrong size, invalid geometry", () => {
  const missing = path.join(dir, "missing.img");
  assert.throws(
    () => openFileBlockStore({ path: missing, lbaBytes: 512, lbaCount: 8 }),
    (e) => StorageError.is(e, "open-failed") && (e.cause as NodeJS.ErrnoException).code === "ENOENT",
  );
  assert.equal(fs.existsSync(missing), false);

  const p = tmpPath();
  openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: 8, create: true }).close();
  for (const create of [false, true]) {
    assert.throws(
      () => openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: 16, create }),
      (e) => StorageError.is(e, "size-mismatch"),
    );
  }
  const empty = tmpPath();
  fs.writeFileSync(empty, "");
  assert.throws(
    () => openFileBlockStore({ path: empty, lbaBytes: 512, lbaCount: 8 }),
    (e) => StorageError.is(e, "size-mismatch"),
  );
  assert.throws(
    () => openFileBlockStore({ path: p, lbaBytes: 520 as 512, lbaCount: 8 }),
    (e) => StorageError.is(e, "open-failed"),
  );
  assert.throws(
    () => openFileBlockStore({ path: dir, lbaBytes: 512, lbaCount: 8 }),
    (e) => StorageError.is(e, "open-failed"),
  );
});

test("out-of-range accesses are refused before touching the file", () => {
  const p = tmpPath();
  const s = openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: 8, create: true });
  assert.throws(
    () => s.write(4096 - 100, new Uint8Array(512)),
    (e) => StorageError.is(e, "out-of-range"),
  );
  assert.throws(
    () => s.read(-512, new Uint8Array(512)),
    (e) => StorageError.is(e, "out-of-range"),
  );
  assert.throws(
    () => s.deallocate(0, 4097),
    (e) => StorageError.is(e, "out-of-range"),
  );
  assert.equal(fs.statSync(p).size, 4096);
  s.close();
});

test("an externally shrunk file turns reads into io-failed, not zeroes", () => {
  const p = tmpPath();
  const s = openFileBlockStore({ path: p, lbaBytes: 512, lbaCount: 8, create: true });
  fs.truncateSync(p, 1024);
  assert.throws(
    () => s.read(2048, new Uint8Array(512)),
    (e) => StorageError.is(e, "io-failed"),
  );
  s.close();
});
