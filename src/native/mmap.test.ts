import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readSync, writeSync } from "node:fs";
import { describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { close, ftruncate, memfdCreate, mmap, munmap, NativeError, nativeStats, pageSize } from "./addon.ts";
import { GuestMemoryFd, mapFdRange } from "./guest-memory-fd.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function memfdOf(sizeBytes: number): number {
  const fd = memfdCreate("mmap-test");
  ftruncate(fd, sizeBytes);
  return fd;
}

/**
 * Maps `count` times and drops every ArrayBuffer, unmapping every other one explicitly. A plain
 * function, so no suspended async frame keeps the last buffer alive.
 */
function churnMappings(fd: number, sizeBytes: number, count: number): void {
  for (let i = 0; i < count; i++) {
    const buffer = mmap(fd, sizeBytes, 0, true);
    new Uint8Array(buffer)[i] = i & 0xff;
    if (i % 2 === 0) munmap(buffer);
  }
}

describe("mmap of a memfd", () => {
  it("is coherent between two mappings of the same memfd and with pread/pwrite", () => {
    const fd = memfdOf(3 * pageSize());
    const a = new Uint8Array(mmap(fd, 3 * pageSize(), 0, true));
    const b = new Uint8Array(mmap(fd, 2 * pageSize(), pageSize(), true)); // second and third page
    a[pageSize() + 5] = 0x5a;
    assert.equal(b[5], 0x5a);
    b[pageSize()] = 0xa5;
    assert.equal(a[2 * pageSize()], 0xa5);
    const viaRead = Buffer.alloc(1);
    readSync(fd, viaRead, 0, 1, pageSize() + 5);
    assert.equal(viaRead[0], 0x5a);
    writeSync(fd, Buffer.from([0x11]), 0, 1, 7);
    assert.equal(a[7], 0x11);
    munmap(a.buffer as ArrayBuffer);
    munmap(b.buffer as ArrayBuffer);
    close(fd);
  });

  it("munmap detaches the ArrayBuffer and a second munmap is a no-op", () => {
    const fd = memfdOf(pageSize());
    const before = nativeStats().liveMappings;
    const buffer = mmap(fd, pageSize(), 0, true);
    const view = new Uint8Array(buffer);
    assert.equal(nativeStats().liveMappings, before + 1);
    assert.equal(munmap(buffer), true);
    assert.equal(buffer.byteLength, 0);
    assert.equal(view.length, 0);
    assert.equal(view[0], undefined);
    assert.equal(munmap(buffer), false);
    assert.equal(nativeStats().liveMappings, before);
    close(fd);
  });

  it("munmap refuses ArrayBuffers it did not map", () => {
    assert.equal(munmap(new ArrayBuffer(16)), false);
  });

  it("finalizes dropped mappings on GC, after explicit munmap or without it", async () => {
    const fd = memfdOf(16 * pageSize());
    const baseline = nativeStats();
    churnMappings(fd, 16 * pageSize(), 200);
    for (let turn = 0; turn < 5 && nativeStats().mappingRecords > baseline.mappingRecords; turn++) {
      gc();
      await nextTurn();
    }
    const after = nativeStats();
    assert.ok(after.mappingRecords <= baseline.mappingRecords, `${after.mappingRecords} records left`);
    assert.equal(after.liveMappings, baseline.liveMappings);
    close(fd);
  });

  it("never unmaps twice: explicit munmap, address reuse, then GC (child process)", () => {
    const child = fileURLToPath(new URL("./fixtures/mmap-gc-child.ts", import.meta.url));
    const result = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", child, "20"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(result.signal, null, `child killed by ${result.signal}: ${result.stderr}`);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^ok 20 live=0$/m);
  });

  it("rejects an unaligned offset with NativeError EINVAL", () => {
    const fd = memfdOf(2 * pageSize());
    assert.throws(
      () => mmap(fd, pageSize(), 1, true),
      (e: unknown) => e instanceof NativeError && e.code === "EINVAL" && e.syscall === "mmap",
    );
    close(fd);
  });
});

describe("GuestMemoryFd and mapFdRange", () => {
  it("creates a zeroed shared memfd whose bytes another mapping of its fd sees", () => {
    const mem = GuestMemoryFd.create("guest-ram", 1 << 20);
    const bytes = mem.bytes();
    assert.equal(bytes.length, 1 << 20);
    assert.equal(
      bytes.every((x) => x === 0),
      true,
    );
    bytes.set([1, 2, 3], 0x12345);
    const range = mapFdRange(mem.fd, 0x12345, 3, false); // unaligned start
    assert.deepEqual([...range.bytes], [1, 2, 3]);
    assert.equal(range.buffer.byteLength, (0x12345 % pageSize()) + 3);
    range.unmap();
    range.unmap();
    assert.equal(range.bytes.length, 0);
    mem.close();
    mem.close();
    assert.equal(mem.buffer.byteLength, 0);
    assert.equal(mem.closed, true);
  });
});
