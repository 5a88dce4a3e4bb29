import assert from "node:assert/strict";
import { fstatSync, openSync } from "node:fs";
import { describe, test } from "node:test";
import { VfioUserClient } from "./client.ts";
import { createMemoryTransportPair } from "./memory-transport.ts";
import {
  Command,
  DeviceFeature,
  DeviceFeatureFlag,
  DmaMapFlag,
  Errno,
  IrqIndex,
  RegionFlag,
  RegionIndex,
  SetIrqsFlag,
} from "./protocol/constants.ts";
import { encodeDeviceInfoRequest } from "./protocol/device-info.ts";
import { encodeDmaMap, encodeDmaUnmap } from "./protocol/dma.ts";
import { encodeCommand, encodeMessage } from "./protocol/header.ts";
import { encodeSetIrqs } from "./protocol/irq.ts";
import { encodeMigData } from "./protocol/mig-data.ts";
import { encodeRegionAccess, encodeRegionInfoRequest } from "./protocol/region.ts";
import { encodeVersion } from "./protocol/version.ts";
import { VfioUserServer } from "./server.ts";
import { FAKE_MSIX_VECTORS, FakeBackend } from "./testing/fake-backend.ts";
import { connectClient, createHarness, RawPeer, rejectsWithErrno, tick } from "./testing/harness.ts";

const te = new TextEncoder();
const td = new TextDecoder();

function versionWithJson(json: string): Uint8Array {
  const j = te.encode(json);
  const p = new Uint8Array(4 + j.byteLength + 1);
  p.set(j, 4);
  return p;
}

/** Every fd still open is either the backend's BAR0 fd or one the backend holds. */
function assertNoLeak(h: ReturnType<typeof createHarness>, alsoOpen: number[] = []): void {
  assert.deepEqual(h.fds.errors, []);
  const expected = [h.bar0Fd, ...h.backend.heldFds(), ...alsoOpen].sort((a, b) => a - b);
  assert.deepEqual(h.fds.openFds(), expected);
}

describe("VERSION", () => {
  test("echoes the major, minor = min(proposed, 2), advertises our capabilities", async () => {
    const h = createHarness();
    const raw = new RawPeer(h.newConnection().clientEnd);
    raw.send(encodeCommand(5, Command.VERSION, versionWithJson('{"capabilities":{"max_msg_fds":16}}')));
    await raw.waitFor(1);
    const r = raw.received[0]!;
    assert.equal(r.header.id, 5);
    assert.equal(r.header.flags, 1);
    assert.deepEqual([...r.payload.subarray(0, 4)], [0, 0, 0, 0]);
    assert.equal(r.payload[r.payload.byteLength - 1], 0, "NUL-terminated");
    assert.deepEqual(JSON.parse(td.decode(r.payload.subarray(4, -1))), {
      capabilities: { max_msg_fds: 8, max_data_xfer_size: 1048576, migration: { pgsize: 4096 } },
    });
    const c = await connectClient(createHarness(), { minor: 7 });
    assert.deepEqual(c.serverVersion, { major: 0, minor: 2 });
    assert.equal(c.serverCapabilities.maxMsgFds, 8);
    assert.equal(c.serverCapabilities.maxDataXferSize, 1048576);
    assert.deepEqual(c.serverCapabilities.migration, { pgsize: 4096 });
  });

  test("bad JSON, JSON that is not an object, and fds are EINVAL; the connection stays usable", async () => {
    const h = createHarness();
    const raw = new RawPeer(h.newConnection().clientEnd);
    raw.send(encodeCommand(1, Command.VERSION, versionWithJson("[1]")));
    raw.send(encodeCommand(2, Command.VERSION, versionWithJson("{oops")));
    const fd = h.fds.open();
    raw.send(encodeCommand(3, Command.VERSION, encodeVersion({ major: 0, minor: 0 })), [fd]);
    h.fds.close(fd);
    await raw.waitFor(3);
    assert.deepEqual(
      raw.received.map((r) => [r.header.id, r.header.flags, r.header.errno]),
      [
        [1, 0x21, Errno.EINVAL],
        [2, 0x21, Errno.EINVAL],
        [3, 0x21, Errno.EINVAL],
      ],
    );
    assert.ok(h.events.some((e) => e.name === "version-rejected" && e.detail === "json-not-object"));
    await raw.negotiate();
    assertNoLeak(h);
  });

  test("commands before VERSION get EINVAL; a second VERSION gets EINVAL", async () => {
    const h = createHarness();
    const raw = new RawPeer(h.newConnection().clientEnd);
    raw.send(encodeCommand(1, Command.DEVICE_GET_INFO, encodeDeviceInfoRequest()));
    await raw.waitFor(1);
    assert.equal(raw.received[0]!.header.errno, Errno.EINVAL);
    assert.ok(h.events.some((e) => e.name === "command-before-version"));
    await raw.negotiate();
    raw.send(encodeCommand(9, Command.VERSION, encodeVersion({ major: 0, minor: 0 })));
    await raw.waitFor(3);
    assert.equal(raw.received[2]!.header.errno, Errno.EINVAL);
    assert.ok(h.server.negotiated);
  });

  test("another major is answered ENOTSUP and the connection is closed", async () => {
    const h = createHarness();
    const raw = new RawPeer(h.newConnection().clientEnd);
    raw.send(encodeCommand(1, Command.VERSION, encodeVersion({ major: 1, minor: 0 })));
    await raw.waitFor(2);
    assert.equal(raw.received[0]!.header.errno, Errno.ENOTSUP);
    assert.ok(raw.closed);
    await tick();
    assert.equal(h.backend.detachCount, 1);
  });
});

describe("DMA_MAP / DMA_UNMAP", () => {
  test("map with and without fd, EEXIST on overlap (fd closed), exact unmap echoes the request", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    const memfd = h.fds.open();
    await c.dmaMap({ iova: 0, sizeBytes: 0x100000, fd: memfd, fileOffset: 0x1000 });
    h.fds.close(memfd); // the sender keeps no copy
    await c.dmaMap({ iova: 0xfffc0000, sizeBytes: 0x40000, flags: DmaMapFlag.READ });
    const m = h.backend.maps.get(0)!;
    assert.equal(m.fileOffset, 0x1000);
    assert.equal(m.flags, 3);
    assert.ok(m.fd !== undefined && h.fds.isOpen(m.fd));
    assert.equal(h.backend.maps.get(0xfffc0000)!.fd, undefined);
    const dup = h.fds.open();
    await rejectsWithErrno(c.dmaMap({ iova: 0x80000, sizeBytes: 0x100000, fd: dup }), Errno.EEXIST);
    h.fds.close(dup);
    assertNoLeak(h);
    const raw = await c.request(
      Command.DMA_UNMAP,
      encodeDmaUnmap({ flags: 0, address: 0xfffc0000, sizeBytes: 0x40000 }),
    );
    assert.deepEqual(
      [...raw.payload],
      [...encodeDmaUnmap({ flags: 0, address: 0xfffc0000, sizeBytes: 0x40000 })],
    );
    await rejectsWithErrno(c.dmaUnmap(0, 0x1000), Errno.ENOENT);
    await c.dmaUnmap(0, 0x100000);
    assert.equal(h.backend.maps.size, 0);
    assertNoLeak(h);
  });

  test("invalid maps: bad flags, zero size, two fds (both closed), short payload, backend refusal", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    await rejectsWithErrno(c.dmaMap({ iova: 0, sizeBytes: 4096, flags: 0 }), Errno.EINVAL);
    await rejectsWithErrno(c.dmaMap({ iova: 0, sizeBytes: 4096, flags: 8 | 3 }), Errno.EINVAL);
    await rejectsWithErrno(c.dmaMap({ iova: 0, sizeBytes: 0 }), Errno.EINVAL);
    const a = h.fds.open();
    const b = h.fds.open();
    await rejectsWithErrno(
      c.request(Command.DMA_MAP, encodeDmaMap({ flags: 3, offset: 0, address: 0, sizeBytes: 4096 }), {
        fds: [a, b],
      }),
      Errno.EINVAL,
    );
    await rejectsWithErrno(
      c.request(
        Command.DMA_MAP,
        encodeDmaMap({ flags: 3, offset: 0, address: 0, sizeBytes: 4096 }).subarray(0, 24),
      ),
      Errno.EINVAL,
    );
    h.backend.hooks.dmaMap = () => Errno.ENOMEM;
    await rejectsWithErrno(c.dmaMap({ iova: 0, sizeBytes: 4096, fd: a }), Errno.ENOMEM);
    h.backend.hooks.dmaMap = undefined;
    await c.dmaMap({ iova: 0, sizeBytes: 4096, fd: a }); // the refused map left no table entry behind
    h.fds.close(a);
    h.fds.close(b);
    assertNoLeak(h);
  });

  test("ENOSPC beyond maxDmaMaps, which is then advertised", async () => {
    const h = createHarness({ server: { maxDmaMaps: 2 } });
    const c = await connectClient(h);
    assert.equal(c.serverCapabilities.maxDmaMaps, 2);
    await c.dmaMap({ iova: 0, sizeBytes: 4096 });
    await c.dmaMap({ iova: 8192, sizeBytes: 4096 });
    await rejectsWithErrno(c.dmaMap({ iova: 16384, sizeBytes: 4096 }), Errno.ENOSPC);
  });

  test("UNMAP_ALL drops every mapping; an fd on DMA_UNMAP (SPDK) is closed and the unmap succeeds", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    for (let i = 0; i < 4; i++) {
      const fd = h.fds.open();
      await c.dmaMap({ iova: i * 0x10000, sizeBytes: 0x10000, fd });
      h.fds.close(fd);
    }
    const spdkFd = h.fds.open();
    await c.request(Command.DMA_UNMAP, encodeDmaUnmap({ flags: 0, address: 0, sizeBytes: 0x10000 }), {
      fds: [spdkFd],
    });
    h.fds.close(spdkFd);
    assert.equal(h.backend.maps.size, 3);
    assertNoLeak(h);
    await c.dmaUnmapAll();
    assert.equal(h.backend.maps.size, 0);
    assertNoLeak(h);
    await rejectsWithErrno(
      c.request(Command.DMA_UNMAP, encodeDmaUnmap({ flags: 1, address: 0, sizeBytes: 4096 })),
      Errno.ENOTSUP,
    );
  });
});

describe("device, region and IRQ info", () => {
  test("DEVICE_GET_INFO; argsz < 16 and short payloads are EINVAL", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    assert.deepEqual(await c.deviceGetInfo(), { flags: 3, numRegions: 9, numIrqs: 5 });
    await rejectsWithErrno(c.request(Command.DEVICE_GET_INFO, encodeDeviceInfoRequest(8)), Errno.EINVAL);
    await rejectsWithErrno(c.request(Command.DEVICE_GET_INFO, new Uint8Array(4)), Errno.EINVAL);
  });

  test("REGION_INFO with argsz retry: a truncated first reply without fd, then the full one with the fd", async () => {
    const h = createHarness();
    const sent: number[] = [];
    const c = await connectClient(h, {
      log: () => undefined,
    });
    const orig = c.request.bind(c);
    c.request = (command, payload, opts, hooks) => {
      if (command === Command.DEVICE_GET_REGION_INFO && payload !== undefined) {
        sent.push(new DataView(payload.buffer, payload.byteOffset).getUint32(0, true));
      }
      return orig(command, payload, opts, hooks);
    };
    const bar0 = await c.regionInfo(RegionIndex.BAR0);
    assert.deepEqual(sent, [32, 64], "first argsz 32, retried with the needed 64");
    assert.equal(bar0.flags, RegionFlag.READ | RegionFlag.WRITE | RegionFlag.MMAP | RegionFlag.CAPS);
    assert.equal(bar0.sizeBytes, 0x4000);
    assert.deepEqual(bar0.sparseAreas, [{ offset: 0x1000, sizeBytes: 0x1000 }]);
    assert.ok(bar0.fd !== undefined && bar0.fd !== h.bar0Fd && h.fds.isOpen(bar0.fd));
    h.fds.close(bar0.fd);
    const cfg = await c.regionInfo(RegionIndex.CONFIG);
    assert.equal(cfg.fd, undefined);
    assert.equal(cfg.sizeBytes, 256);
    assert.equal(sent.length, 3, "no retry when the struct fits");
    assertNoLeak(h);
  });

  test("REGION_INFO errors: unknown index, argsz < 32; an SPDK-style 4064-byte request works", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    await rejectsWithErrno(
      c.request(Command.DEVICE_GET_REGION_INFO, encodeRegionInfoRequest(9, 32)),
      Errno.EINVAL,
    );
    await rejectsWithErrno(
      c.request(Command.DEVICE_GET_REGION_INFO, encodeRegionInfoRequest(0xdeadbeef, 32)),
      Errno.EINVAL,
    );
    await rejectsWithErrno(
      c.request(Command.DEVICE_GET_REGION_INFO, encodeRegionInfoRequest(0, 31)),
      Errno.EINVAL,
    );
    const spdk = new Uint8Array(4064);
    spdk.set(encodeRegionInfoRequest(0, 4064));
    const r = await c.request(Command.DEVICE_GET_REGION_INFO, spdk);
    assert.equal(r.payload.byteLength, 64);
    assert.equal(r.fds.length, 1);
    h.fds.close(r.fds[0]!);
    assertNoLeak(h);
  });

  test("IRQ_INFO; unknown index EINVAL", async () => {
    const c = await connectClient(createHarness());
    assert.deepEqual(await c.irqInfo(IrqIndex.MSIX), { index: 2, flags: 0x9, count: FAKE_MSIX_VECTORS });
    await rejectsWithErrno(c.irqInfo(5), Errno.EINVAL);
  });
});

describe("SET_IRQS", () => {
  test("eventfds are handed to the backend, chunked by the server's max_msg_fds; -1 de-assigns", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    const efds = Array.from({ length: FAKE_MSIX_VECTORS }, () => h.fds.open());
    await c.setIrqs(IrqIndex.MSIX, 0, efds);
    for (const fd of efds) h.fds.close(fd);
    assert.deepEqual(
      h.backend.calls.filter((s) => s.startsWith("setIrqs")),
      ["setIrqs 2 0x24 0 8 fds=8", "setIrqs 2 0x24 8 8 fds=8"],
    );
    assert.equal(h.backend.irqFds.size, 16);
    assertNoLeak(h);
    await c.setIrqs(IrqIndex.MSIX, 4, [-1, -1]);
    assert.equal(h.backend.irqFds.size, 14);
    await c.disableIrqs(IrqIndex.MSIX);
    assert.equal(h.backend.irqFds.size, 0);
    assertNoLeak(h);
  });

  test("fd count mismatch, fds without DATA_EVENTFD, range and flag errors are EINVAL; fds closed", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    const a = h.fds.open();
    const b = h.fds.open();
    const trig = SetIrqsFlag.DATA_EVENTFD | SetIrqsFlag.ACTION_TRIGGER;
    await rejectsWithErrno(
      c.setIrqsRaw({ flags: trig, index: 2, start: 0, count: 3, fds: [a, b] }),
      Errno.EINVAL,
    );
    await rejectsWithErrno(
      c.setIrqsRaw({
        flags: SetIrqsFlag.DATA_NONE | SetIrqsFlag.ACTION_UNMASK,
        index: 0,
        start: 0,
        count: 1,
        fds: [a],
      }),
      Errno.EINVAL,
    );
    await rejectsWithErrno(
      c.setIrqsRaw({ flags: trig, index: 2, start: 15, count: 2, fds: [a, b] }),
      Errno.EINVAL,
    );
    await rejectsWithErrno(
      c.setIrqsRaw({ flags: trig, index: 9, start: 0, count: 1, fds: [a] }),
      Errno.EINVAL,
    );
    await rejectsWithErrno(
      c.setIrqsRaw({ flags: 0x26, index: 0, start: 0, count: 1, fds: [a] }),
      Errno.EINVAL,
    );
    await rejectsWithErrno(c.setIrqsRaw({ flags: trig, index: 0, start: 0, count: 0 }), Errno.EINVAL);
    // mask eventfds are refused by this backend: the server closes them
    await rejectsWithErrno(
      c.setIrqsRaw({
        flags: SetIrqsFlag.DATA_EVENTFD | SetIrqsFlag.ACTION_MASK,
        index: 0,
        start: 0,
        count: 1,
        fds: [a],
      }),
      Errno.EINVAL,
    );
    h.fds.close(a);
    h.fds.close(b);
    assertNoLeak(h);
    assert.ok(h.events.some((e) => e.name === "missing-fds"));
    assert.ok(h.events.some((e) => e.name === "unexpected-fds"));
  });

  test("QEMU's INTx sequence: trigger eventfd, disable (0x21, count 0), DATA_NONE unmask, DATA_BOOL", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    const e = h.fds.open();
    await c.setIrqs(IrqIndex.INTX, 0, [e]);
    h.fds.close(e);
    await c.setIrqsRaw({ flags: 0x21, index: 0, start: 0, count: 0 });
    await c.setIrqsRaw({ flags: 0x11, index: 0, start: 0, count: 1 });
    await c.setIrqsRaw({
      flags: SetIrqsFlag.DATA_BOOL | SetIrqsFlag.ACTION_MASK,
      index: 2,
      start: 0,
      count: 2,
      bools: Uint8Array.of(1, 0),
    });
    assert.equal(h.backend.irqFds.size, 0);
    assertNoLeak(h);
  });
});

describe("REGION_READ / REGION_WRITE", () => {
  test("write then read back; short reads allowed; posted writes are processed in order", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    await c.regionWrite(RegionIndex.BAR0, 0x14, Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual([...(await c.regionRead(RegionIndex.BAR0, 0x14, 4))], [1, 2, 3, 4]);
    await c.regionWrite(RegionIndex.CONFIG, 4, Uint8Array.of(7), { posted: true });
    assert.deepEqual([...(await c.regionRead(RegionIndex.CONFIG, 4, 1))], [7]);
    h.backend.hooks.regionRead = () => Uint8Array.of(9, 9);
    assert.deepEqual([...(await c.regionRead(RegionIndex.BAR0, 0, 4))], [9, 9]);
  });

  test("out of bounds, count 0, unknown region, region without READ are EINVAL; count > max E2BIG", async () => {
    const h = createHarness({ server: { maxDataXferBytes: 4096 } });
    const c = await connectClient(h);
    await rejectsWithErrno(c.regionRead(RegionIndex.BAR0, 0x3ffe, 4), Errno.EINVAL);
    await rejectsWithErrno(c.regionWrite(RegionIndex.CONFIG, 255, Uint8Array.of(1, 2)), Errno.EINVAL);
    await rejectsWithErrno(c.regionRead(RegionIndex.BAR0, 0, 0), Errno.EINVAL);
    await rejectsWithErrno(c.regionRead(0xdeadbeef, 0, 4), Errno.EINVAL);
    await rejectsWithErrno(c.regionRead(RegionIndex.BAR1, 0, 4), Errno.EINVAL);
    await rejectsWithErrno(c.regionRead(RegionIndex.BAR0, 0, 4097), Errno.E2BIG);
    await rejectsWithErrno(c.regionWrite(RegionIndex.BAR0, 0, new Uint8Array(4097)), Errno.E2BIG);
    await rejectsWithErrno(
      c.request(Command.REGION_WRITE, encodeRegionAccess({ offset: 0, region: 0, count: 4 })),
      Errno.EINVAL,
    );
    await rejectsWithErrno(c.regionRead(RegionIndex.BAR0, 2 ** 52, 4), Errno.EINVAL);
    assert.deepEqual(
      h.backend.calls.filter((s) => s.startsWith("region")),
      [],
      "nothing reached the backend",
    );
  });

  test("a failing posted write gets no reply; the next command is answered", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    await c.regionWrite(RegionIndex.CONFIG, 300, Uint8Array.of(1), { posted: true });
    assert.deepEqual([...(await c.regionRead(RegionIndex.CONFIG, 0, 1))], [0]);
    assert.ok(h.events.some((e) => e.name === "bad-payload" && e.detail === "region-out-of-bounds"));
  });

  test("REGION_WRITE_MULTI: ENOTSUP unless negotiated, then every write applied", async () => {
    const h1 = createHarness();
    const c1 = await connectClient(h1, { capabilities: { writeMultiple: true } });
    await rejectsWithErrno(
      c1.regionWriteMulti([{ offset: 0, region: 0, count: 1, data: Uint8Array.of(1) }]),
      Errno.ENOTSUP,
    );
    const h2 = createHarness({ server: { writeMultiple: true } });
    const c2 = await connectClient(h2, { capabilities: { writeMultiple: true } });
    assert.equal(c2.serverCapabilities.writeMultiple, true);
    const n = await c2.regionWriteMulti([
      { offset: 0x1000, region: 0, count: 4, data: Uint8Array.of(1, 2, 3, 4) },
      { offset: 0x1004, region: 0, count: 4, data: Uint8Array.of(5, 6, 7, 8) },
    ]);
    assert.equal(n, 2);
    assert.deepEqual([...h2.backend.bar0.subarray(0x1000, 0x1008)], [1, 2, 3, 4, 5, 6, 7, 8]);
    await rejectsWithErrno(
      c2.regionWriteMulti([{ offset: 0x4000, region: 0, count: 4, data: Uint8Array.of(1, 2, 3, 4) }]),
      Errno.EINVAL,
    );
  });
});

describe("reset, features, migration data", () => {
  test("DEVICE_RESET; with a payload EINVAL", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    await c.reset();
    assert.equal(h.backend.resetCount, 1);
    await rejectsWithErrno(c.request(Command.DEVICE_RESET, new Uint8Array(4)), Errno.EINVAL);
    h.backend.hooks.reset = () => Errno.EBUSY;
    await rejectsWithErrno(c.reset(), Errno.EBUSY);
  });

  test("DEVICE_FEATURE GET data, SET echoed byte for byte, PROBE, GET truncation retry, errors", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    const mig = await c.deviceFeature(DeviceFeatureFlag.GET | DeviceFeature.MIGRATION, undefined, 8);
    assert.deepEqual([...mig.data], [5, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(mig.argsz, 16);
    const setReq = Uint8Array.of(6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff);
    const raw = await c.request(
      Command.DEVICE_FEATURE,
      Uint8Array.of(0x10, 0, 0, 0, 0x02, 0, 0x02, 0, ...setReq),
    );
    assert.deepEqual([...raw.payload], [0x10, 0, 0, 0, 0x02, 0, 0x02, 0, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert.equal(h.backend.migState, 6);
    const probe = await c.deviceFeature(
      DeviceFeatureFlag.PROBE | DeviceFeatureFlag.SET | DeviceFeature.MIG_DEVICE_STATE,
    );
    assert.equal(probe.argsz, 8);
    const report = await c.deviceFeature(
      DeviceFeatureFlag.GET | DeviceFeature.DMA_LOGGING_REPORT,
      new Uint8Array(24),
    );
    assert.equal(report.data.byteLength, 88, "retried with the argsz the server asked for");
    await rejectsWithErrno(c.deviceFeature(DeviceFeatureFlag.GET | 99), Errno.ENOTSUP);
    await rejectsWithErrno(c.deviceFeature(DeviceFeatureFlag.GET | DeviceFeatureFlag.SET | 2), Errno.EINVAL);
  });

  test("MIG_DATA_READ streams with short read = end; MIG_DATA_WRITE; size and argsz checks", async () => {
    const h = createHarness({ server: { maxDataXferBytes: 4096 } });
    const c = await connectClient(h);
    h.backend.migOut = Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff);
    const a = await c.migDataRead(4096);
    const b = await c.migDataRead(4096);
    assert.equal(a.byteLength, 4096);
    assert.equal(b.byteLength, 904);
    assert.equal(b[0], 4096 & 0xff);
    await rejectsWithErrno(c.migDataRead(4097), Errno.E2BIG);
    await rejectsWithErrno(
      c.request(Command.MIG_DATA_READ, encodeMigData({ argsz: 8, sizeBytes: 16 })),
      Errno.EINVAL,
    );
    await c.migDataWrite(Uint8Array.of(1, 2, 3));
    assert.deepEqual(h.backend.migIn, [1, 2, 3]);
    await rejectsWithErrno(c.migDataWrite(new Uint8Array(4097)), Errno.E2BIG);
    await rejectsWithErrno(
      c.request(Command.MIG_DATA_WRITE, encodeMigData({ sizeBytes: 4, data: Uint8Array.of(1) })),
      Errno.EINVAL,
    );
  });
});

describe("hardening", () => {
  test("unknown commands and GET_REGION_IO_FDS are ENOTSUP; DMA_READ sent to the server EINVAL; fds closed", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    for (const cmd of [0, 14, 19, 0xffff, Command.DEVICE_GET_REGION_IO_FDS]) {
      await rejectsWithErrno(c.request(cmd, new Uint8Array(16)), Errno.ENOTSUP);
    }
    await rejectsWithErrno(c.request(Command.DMA_READ, new Uint8Array(16)), Errno.EINVAL);
    await rejectsWithErrno(c.request(Command.DMA_WRITE, new Uint8Array(17)), Errno.EINVAL);
    const fd = h.fds.open();
    await rejectsWithErrno(
      c.request(Command.DEVICE_GET_INFO, encodeDeviceInfoRequest(), { fds: [fd] }),
      Errno.EINVAL,
    );
    await rejectsWithErrno(c.request(42, undefined, { fds: [fd] }), Errno.ENOTSUP);
    const many = Array.from({ length: 9 }, () => h.fds.open());
    await rejectsWithErrno(
      c.setIrqs(IrqIndex.MSIX, 0, many.slice(0, 8)).then(() =>
        c.request(Command.DEVICE_SET_IRQS, encodeSetIrqs({ flags: 0x24, index: 2, start: 0, count: 9 }), {
          fds: many,
        }),
      ),
      Errno.EINVAL,
    );
    h.fds.close(fd);
    for (const f of many) h.fds.close(f);
    assertNoLeak(h);
    assert.ok(h.events.some((e) => e.name === "too-many-fds"));
  });

  test("a message over the size limit is E2BIG (also from the header alone); an unknown type EINVAL", async () => {
    const h = createHarness({ server: { maxDataXferBytes: 4096, maxMessageBytes: 8192 } });
    const raw = new RawPeer(h.newConnection().clientEnd);
    await raw.negotiate();
    raw.send(encodeCommand(2, Command.REGION_WRITE, new Uint8Array(8192)));
    const headerOnly = encodeMessage({ id: 3, command: Command.REGION_WRITE, flags: 0 });
    new DataView(headerOnly.buffer).setUint32(4, 1 << 30, true);
    raw.send(headerOnly);
    raw.send(encodeMessage({ id: 4, command: Command.DEVICE_GET_INFO, flags: 2 }, encodeDeviceInfoRequest()));
    raw.send(encodeCommand(5, Command.DEVICE_GET_INFO, encodeDeviceInfoRequest()));
    await raw.waitFor(5);
    assert.deepEqual(
      raw.received.slice(1).map((r) => [r.header.id, r.header.flags, r.header.errno]),
      [
        [2, 0x21, Errno.E2BIG],
        [3, 0x21, Errno.E2BIG],
        [4, 0x21, Errno.EINVAL],
        [5, 0x1, 0],
      ],
    );
  });

  for (const [name, bytes] of [
    ["fewer than 16 bytes", new Uint8Array(10)],
    ["header size < 16", encodeMessage({ id: 1, command: 4, flags: 0 }).map((b, i) => (i === 4 ? 8 : b))],
    [
      "header size larger than the bytes",
      encodeMessage({ id: 1, command: 4, flags: 0 }).map((b, i) => (i === 4 ? 32 : b)),
    ],
    [
      "header size smaller than the bytes",
      encodeCommand(1, 4, encodeDeviceInfoRequest()).map((b, i) => (i === 4 ? 20 : b)),
    ],
  ] as const) {
    test(`untrusted framing (${name}) closes the connection; fds closed; a new client can attach`, async () => {
      const h = createHarness();
      const raw = new RawPeer(h.newConnection().clientEnd);
      await raw.negotiate();
      const fd = h.fds.open();
      raw.send(bytes, [fd]);
      h.fds.close(fd);
      raw.send(encodeCommand(2, Command.DEVICE_GET_INFO, encodeDeviceInfoRequest()));
      await raw.waitFor(2);
      assert.ok(raw.closed);
      assert.equal(raw.received.length, 1, "nothing answered after the framing error");
      await tick();
      assert.equal(h.backend.detachCount, 1);
      assertNoLeak(h);
      const c = await connectClient(h);
      assert.equal((await c.deviceGetInfo()).numRegions, 9);
    });
  }

  test("a throwing backend yields EIO and the server keeps serving", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    h.backend.hooks.regionRead = () => {
      throw new Error("device bug");
    };
    await rejectsWithErrno(c.regionRead(RegionIndex.BAR0, 0, 4), Errno.EIO);
    h.backend.hooks.regionRead = () => Promise.reject(new Error("async device bug"));
    await rejectsWithErrno(c.regionRead(RegionIndex.BAR0, 0, 4), Errno.EIO);
    h.backend.hooks.regionRead = undefined;
    assert.equal((await c.regionRead(RegionIndex.BAR0, 0, 4)).byteLength, 4);
    assert.equal(h.events.filter((e) => e.name === "backend-threw").length, 2);
  });
});

describe("ordering", () => {
  test("pipelined commands are answered in order, each with its own id", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    const order: string[] = [];
    const ps = [
      c.regionWrite(RegionIndex.BAR0, 0, Uint8Array.of(1)).then(() => order.push("w1")),
      c.regionRead(RegionIndex.BAR0, 0, 1).then((d) => order.push(`r1=${d[0]}`)),
      c.regionWrite(RegionIndex.BAR0, 0, Uint8Array.of(2)).then(() => order.push("w2")),
      c.deviceGetInfo().then(() => order.push("info")),
      c.regionRead(RegionIndex.BAR0, 0, 1).then((d) => order.push(`r2=${d[0]}`)),
      c.regionRead(RegionIndex.BAR0, 0x4000, 1).then(
        () => order.push("no error?"),
        (e: { errno?: number }) => order.push(`err ${e.errno}`),
      ),
      c.regionRead(RegionIndex.BAR0, 0, 1).then((d) => order.push(`r3=${d[0]}`)),
    ];
    await Promise.all(ps);
    assert.deepEqual(order, ["w1", "r1=1", "w2", "info", "r2=2", `err ${Errno.EINVAL}`, "r3=2"]);
  });

  test("an asynchronous backend still runs commands strictly one after another", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    const log: string[] = [];
    h.backend.hooks.regionWrite = async (_i, offset) => {
      log.push(`start ${offset}`);
      await new Promise((r) => setTimeout(r, offset === 0 ? 20 : 1));
      log.push(`end ${offset}`);
      return 0;
    };
    const reads = h.backend.hooks;
    reads.regionRead = (_i, offset) => {
      log.push(`read ${offset}`);
      return Uint8Array.of(0);
    };
    await Promise.all([
      c.regionWrite(RegionIndex.BAR0, 0, Uint8Array.of(1)),
      c.regionWrite(RegionIndex.BAR0, 8, Uint8Array.of(1)),
      c.regionRead(RegionIndex.BAR0, 16, 1),
    ]);
    assert.deepEqual(log, ["start 0", "end 0", "start 8", "end 8", "read 16"]);
  });

  test("the reply to a region write is on the wire before the DMA it triggers", async () => {
    const h = createHarness();
    const { clientEnd } = h.newConnection();
    const wire: string[] = [];
    // Spy on what reaches the client, in order.
    const spy = {
      ...clientEnd,
      get isOpen() {
        return clientEnd.isOpen;
      },
      send: (b: Uint8Array, f: number[]) => clientEnd.send(b, f),
      onClose: (f: () => void) => clientEnd.onClose(f),
      close: () => clientEnd.close(),
      onMessage: (handler: Parameters<typeof clientEnd.onMessage>[0]) =>
        clientEnd.onMessage((m) => {
          const v = new DataView(m.bytes.buffer, m.bytes.byteOffset);
          wire.push(`${v.getUint32(8, true) & 0xf ? "reply" : "cmd"} ${v.getUint16(2, true)}`);
          handler(m);
        }),
    };
    const guest = new Uint8Array(0x1000).fill(0x5a);
    const c = await VfioUserClient.connect(spy, { onDmaRead: (iova, n) => guest.slice(iova, iova + n) });
    await c.dmaMap({ iova: 0, sizeBytes: 0x1000 });
    let fetched: Uint8Array | undefined;
    h.backend.hooks.regionWrite = (_i, offset) => {
      if (offset !== 0x1000) return 0;
      return {
        errno: 0,
        afterReply: async () => {
          fetched = await h.server.dmaRead(0x100, 64);
        },
      };
    };
    wire.length = 0;
    await c.regionWrite(RegionIndex.BAR0, 0x1000, Uint8Array.of(1, 0, 0, 0));
    while (fetched === undefined) await tick();
    assert.deepEqual(wire, [`reply ${Command.REGION_WRITE}`, `cmd ${Command.DMA_READ}`]);
    assert.deepEqual([...fetched], [...guest.subarray(0x100, 0x140)]);
  });
});

describe("server-initiated DMA", () => {
  test("dmaRead / dmaWrite round trip through the client's handlers, split by the client's max_data_xfer_size", async () => {
    const h = createHarness();
    const guest = new Uint8Array(0x10000);
    const seen: string[] = [];
    const c = await connectClient(h, {
      maxDataXferBytes: 4096,
      onDmaRead: (iova, n) => {
        seen.push(`r ${iova} ${n}`);
        return guest.slice(iova - 0x100000, iova - 0x100000 + n);
      },
      onDmaWrite: (iova, data) => {
        seen.push(`w ${iova} ${data.byteLength}`);
        guest.set(data, iova - 0x100000);
        return 0;
      },
    });
    await c.dmaMap({ iova: 0x100000, sizeBytes: 0x10000 });
    const data = Uint8Array.from({ length: 10000 }, (_, i) => (i * 7) & 0xff);
    await h.server.dmaWrite(0x100010, data);
    assert.deepEqual([...guest.subarray(0x10, 0x10 + 10000)], [...data]);
    const back = await h.server.dmaRead(0x100010, 10000);
    assert.deepEqual([...back], [...data]);
    assert.deepEqual(seen, [
      "w 1048592 4096",
      "w 1052688 4096",
      "w 1056784 1808",
      "r 1048592 4096",
      "r 1052688 4096",
      "r 1056784 1808",
    ]);
  });

  test("DMA outside the mappings or against permissions is refused before sending (EFAULT)", async () => {
    const h = createHarness();
    const c = await connectClient(h, { onDmaRead: (_i, n) => new Uint8Array(n), onDmaWrite: () => 0 });
    await c.dmaMap({ iova: 0x1000, sizeBytes: 0x1000, flags: DmaMapFlag.READ });
    const efault = (p: Promise<unknown>) =>
      assert.rejects(
        p,
        (e: { code?: string; errno?: number }) => e.code === "invalid-request" && e.errno === Errno.EFAULT,
      );
    await efault(h.server.dmaRead(0x1ff0, 0x20));
    await efault(h.server.dmaRead(0x3000, 4));
    await efault(h.server.dmaWrite(0x1000, Uint8Array.of(1)));
    assert.equal((await h.server.dmaRead(0x1000, 16)).byteLength, 16);
    await assert.rejects(h.server.dmaRead(0x1000, 0), (e: { code?: string }) => e.code === "invalid-request");
  });

  test("an error reply, a timeout and a disconnect reject the pending DMA", async () => {
    const h = createHarness({ server: { dmaTimeoutMs: 30 } });
    const raw = new RawPeer(h.newConnection().clientEnd);
    await raw.negotiate();
    raw.send(
      encodeCommand(1, Command.DMA_MAP, encodeDmaMap({ flags: 3, offset: 0, address: 0, sizeBytes: 4096 })),
    );
    await raw.waitFor(2);
    const p1 = h.server.dmaRead(0, 8);
    await raw.waitFor(3);
    const cmd = raw.received[2]!;
    assert.equal(cmd.header.command, Command.DMA_READ);
    // a reply with the right id but another command does not match
    raw.send(encodeMessage({ id: cmd.header.id, command: Command.DMA_WRITE, flags: 1 }));
    raw.send(
      encodeMessage({ id: cmd.header.id, command: Command.DMA_READ, flags: 0x21, errno: Errno.EFAULT }),
    );
    await assert.rejects(
      p1,
      (e: { code?: string; errno?: number }) => e.code === "remote-error" && e.errno === Errno.EFAULT,
    );
    assert.ok(h.events.some((e) => e.name === "reply-unmatched"));
    await assert.rejects(h.server.dmaRead(0, 8), (e: { code?: string }) => e.code === "timeout");
    const p3 = h.server.dmaWrite(0, Uint8Array.of(1));
    raw.transport.close();
    await assert.rejects(p3, (e: { code?: string }) => e.code === "disconnected");
    await assert.rejects(h.server.dmaRead(0, 8), (e: { code?: string }) => e.code === "not-connected");
  });
});

describe("connections", () => {
  test("disconnect: clientDetached drops mappings and fds, device state kept; a new client re-attaches", async () => {
    const h = createHarness();
    const c1 = await connectClient(h);
    const memfd = h.fds.open();
    await c1.dmaMap({ iova: 0, sizeBytes: 0x1000, fd: memfd });
    const efd = h.fds.open();
    await c1.setIrqs(IrqIndex.MSIX, 0, [efd]);
    h.fds.close(memfd);
    h.fds.close(efd);
    await c1.regionWrite(RegionIndex.BAR0, 0x20, Uint8Array.of(0xab));
    assert.equal(h.fds.openCount, 3);
    c1.close();
    await tick();
    assert.equal(h.backend.detachCount, 1);
    assert.equal(h.server.connected, false);
    assertNoLeak(h);
    assert.equal(h.fds.openCount, 1);
    const c2 = await connectClient(h);
    await c2.dmaMap({ iova: 0, sizeBytes: 0x1000 }); // the old mapping is gone from the server's table
    assert.deepEqual([...(await c2.regionRead(RegionIndex.BAR0, 0x20, 1))], [0xab]);
  });

  test("a second concurrent client is refused; after the first leaves, the next one is accepted", async () => {
    const h = createHarness();
    const c1 = await connectClient(h);
    const second = h.newConnection();
    assert.equal(second.attached, false);
    assert.equal(second.clientEnd.isOpen, false);
    assert.ok(h.events.some((e) => e.name === "client-rejected"));
    assert.equal((await c1.deviceGetInfo()).numIrqs, 5);
    c1.close();
    await tick();
    const c3 = await connectClient(h);
    assert.equal((await c3.deviceGetInfo()).numIrqs, 5);
  });

  test("clientDetached runs after a command still in progress; queued commands' fds are closed", async () => {
    const h = createHarness();
    const raw = new RawPeer(h.newConnection().clientEnd);
    await raw.negotiate();
    let release!: () => void;
    h.backend.hooks.reset = () => new Promise((r) => (release = () => r(0)));
    raw.send(encodeCommand(1, Command.DEVICE_RESET));
    const fd = h.fds.open();
    raw.send(
      encodeCommand(2, Command.DMA_MAP, encodeDmaMap({ flags: 3, offset: 0, address: 0, sizeBytes: 4096 })),
      [fd],
    );
    h.fds.close(fd);
    await tick();
    raw.transport.close();
    await tick();
    assert.equal(h.backend.detachCount, 0, "waits for the reset");
    release();
    await tick();
    assert.equal(h.backend.detachCount, 1);
    assert.equal(h.backend.maps.size, 0, "the queued DMA_MAP never ran");
    assertNoLeak(h);
  });

  test("server.close() disconnects and refuses later clients", async () => {
    const h = createHarness();
    const c = await connectClient(h);
    let closed = false;
    c.onClose(() => {
      closed = true;
    });
    h.server.close();
    await tick();
    assert.ok(closed);
    assert.equal(h.newConnection().attached, false);
  });
});

test("with the default closer, real fds that do not belong are closed", async () => {
  const backend = new FakeBackend({ closeFd: () => undefined });
  const server = new VfioUserServer({ backend });
  const [serverEnd, clientEnd] = createMemoryTransportPair(); // fds pass as the same numbers
  server.attach(serverEnd);
  const raw = new RawPeer(clientEnd);
  await raw.negotiate();
  const fd = openSync("/dev/null", "r");
  raw.send(encodeCommand(1, Command.DEVICE_GET_INFO, encodeDeviceInfoRequest()), [fd]);
  await raw.waitFor(2);
  assert.equal(raw.received[1]!.header.errno, Errno.EINVAL);
  assert.throws(() => fstatSync(fd), { code: "EBADF" });
  server.close();
});
