import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type DirtyLogger, Dma, DmaRemoteError, type RemoteDmaAccessor } from "./dma.ts";

/** An accessor over a plain buffer at `base`, recording calls; `fail` makes every call reject. */
function bufferAccessor(base: number, bytes: Uint8Array) {
  const calls: string[] = [];
  let fail = false;
  const accessor: RemoteDmaAccessor = {
    read(iova, n) {
      calls.push(`read ${iova} ${n}`);
      if (fail) return Promise.reject(new Error("peer failed"));
      return Promise.resolve(bytes.slice(iova - base, iova - base + n));
    },
    write(iova, data) {
      calls.push(`write ${iova} ${data.byteLength}`);
      if (fail) return Promise.reject(new Error("peer failed"));
      bytes.set(data, iova - base);
      return Promise.resolve();
    },
  };
  return {
    accessor,
    calls,
    setFail: (f: boolean) => {
      fail = f;
    },
  };
}

function recordingLogger(): DirtyLogger & { writes: [number, number][] } {
  const writes: [number, number][] = [];
  return { writes, logWrite: (iova, n) => writes.push([iova, n]) };
}

function isRemoteError(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof DmaRemoteError, String(e));
    assert.equal(e.code, code);
    return true;
  };
}

test("remote ranges are kept apart from direct ones: find/window/read/write never reach them", () => {
  const dma = new Dma();
  const { accessor } = bufferAccessor(0x10000, new Uint8Array(0x1000));
  assert.equal(dma.hasRemote, false);
  assert.ok(dma.map(0, new Uint8Array(0x1000)));
  assert.ok(dma.mapRemote(0x10000, 0x1000, accessor));
  assert.equal(dma.hasRemote, true);
  assert.equal(dma.find(0x10000, 16), undefined);
  assert.equal(dma.window(0x10000, 16), undefined);
  assert.equal(dma.read(0x10000, new Uint8Array(16)), false);
  assert.equal(dma.write(0x10000, new Uint8Array(16)), false);
  assert.equal(dma.findRemote(0x10000, 0x1000)?.iova, 0x10000);
  assert.equal(dma.findRemote(0x10800, 0x900), undefined, "crosses the end");
  assert.equal(dma.findRemote(0, 16), undefined, "a direct range is not remote");
  assert.deepEqual(
    dma.remoteRanges().map((r) => [r.iova, r.lengthBytes, r.writable]),
    [[0x10000, 0x1000, true]],
  );
  assert.equal(dma.ranges().length, 1);
});

test("mapRemote / map refuse overlaps either way; unmapRemote needs the exact range; unmapAll clears both", () => {
  const dma = new Dma();
  const { accessor } = bufferAccessor(0, new Uint8Array(0));
  assert.ok(dma.map(0x1000, new Uint8Array(0x1000)));
  assert.ok(dma.mapRemote(0x4000, 0x2000, accessor));
  assert.equal(dma.mapRemote(0x1800, 0x1000, accessor), false, "overlaps a direct range");
  assert.equal(dma.mapRemote(0x5000, 0x1000, accessor), false, "overlaps a remote range");
  assert.equal(dma.map(0x5fff, new Uint8Array(2)), false, "direct over remote");
  assert.equal(dma.mapRemote(0x8000, 0, accessor), false, "empty");
  assert.equal(dma.mapRemote(-4096, 4096, accessor), false, "negative");
  assert.equal(dma.mapRemote(2 ** 53 - 10, 4096, accessor), false, "not representable");
  assert.ok(dma.mapRemote(0x2000, 0x2000, accessor), "adjacent on both sides");
  assert.deepEqual(
    dma.remoteRanges().map((r) => r.iova),
    [0x2000, 0x4000],
    "address order",
  );
  assert.equal(dma.unmapRemote(0x4000, 0x1000), false);
  assert.ok(dma.unmapRemote(0x4000, 0x2000));
  assert.equal(dma.unmapRemote(0x4000, 0x2000), false);
  dma.unmapAll();
  assert.equal(dma.hasRemote, false);
  assert.equal(dma.ranges().length, 0);
});

test("readRemote / writeRemote go through the accessor; writes are dirty-logged when they settle", async () => {
  const dma = new Dma();
  const mem = new Uint8Array(0x2000);
  const { accessor, calls, setFail } = bufferAccessor(0x40000, mem);
  assert.ok(dma.mapRemote(0x40000, 0x2000, accessor));
  const log = recordingLogger();
  dma.attachLogger(log);
  const p = dma.writeRemote(0x40100, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual(log.writes, [], "not logged before the write landed");
  await p;
  assert.deepEqual(log.writes, [[0x40100, 4]]);
  assert.deepEqual([...mem.subarray(0x100, 0x104)], [1, 2, 3, 4]);
  assert.deepEqual([...(await dma.readRemote(0x400ff, 6))], [0, 1, 2, 3, 4, 0]);
  assert.deepEqual(calls, ["write 262400 4", "read 262399 6"]);
  setFail(true);
  await assert.rejects(dma.readRemote(0x40000, 4), (e: unknown) => {
    assert.ok(e instanceof DmaRemoteError);
    assert.equal(e.code, "transfer-failed");
    assert.equal((e.cause as Error).message, "peer failed");
    return true;
  });
  await assert.rejects(dma.writeRemote(0x41000, new Uint8Array(8)), isRemoteError("transfer-failed"));
  assert.deepEqual(log.writes.at(-1), [0x41000, 8], "a failed write may have landed in part: logged");
});

test("remote accesses outside one remote range, to read-only ranges, or of the wrong length reject", async () => {
  const dma = new Dma();
  const mem = new Uint8Array(0x1000);
  const { accessor, calls } = bufferAccessor(0x9000, mem);
  assert.ok(dma.mapRemote(0x9000, 0x1000, accessor, false));
  const log = recordingLogger();
  dma.attachLogger(log);
  await assert.rejects(dma.readRemote(0x8ff0, 32), isRemoteError("unmapped"));
  await assert.rejects(dma.readRemote(0x9000, 0), isRemoteError("unmapped"));
  await assert.rejects(dma.writeRemote(0x9000, new Uint8Array(4)), isRemoteError("read-only"));
  assert.deepEqual(calls, [], "nothing sent");
  assert.deepEqual(log.writes, [], "nothing logged");
  const short: RemoteDmaAccessor = {
    read: (_iova, n) => Promise.resolve(new Uint8Array(n - 1)),
    write: () => Promise.resolve(),
  };
  assert.ok(dma.mapRemote(0xa000, 0x1000, short));
  await assert.rejects(dma.readRemote(0xa000, 16), isRemoteError("transfer-failed"));
});

test("property: direct and remote ranges never overlap, and every address resolves to at most one", () => {
  const { accessor } = bufferAccessor(0, new Uint8Array(0));
  const op = fc.record({
    remote: fc.boolean(),
    page: fc.integer({ min: 0, max: 63 }),
    pages: fc.integer({ min: 1, max: 8 }),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), fc.integer({ min: 0, max: 72 * 4096 }), (ops, probe) => {
      const dma = new Dma();
      const taken = new Set<number>();
      for (const o of ops) {
        const iova = o.page * 4096;
        const n = o.pages * 4096;
        const free = [...Array(o.pages).keys()].every((i) => !taken.has(o.page + i));
        const ok = o.remote ? dma.mapRemote(iova, n, accessor) : dma.map(iova, new Uint8Array(n));
        assert.equal(ok, free);
        if (ok) for (let i = 0; i < o.pages; i++) taken.add(o.page + i);
      }
      const hits =
        (dma.find(probe, 1) !== undefined ? 1 : 0) + (dma.findRemote(probe, 1) !== undefined ? 1 : 0);
      assert.equal(hits, taken.has(Math.floor(probe / 4096)) ? 1 : 0);
    }),
  );
});
