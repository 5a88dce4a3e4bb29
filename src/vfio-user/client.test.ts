import assert from "node:assert/strict";
import { test } from "node:test";
import { VfioUserClient } from "./client.ts";
import { VfioUserError } from "./errors.ts";
import { createMemoryTransportPair } from "./memory-transport.ts";
import { Command, Errno, RegionFlag } from "./protocol/constants.ts";
import { encodeDmaAccess } from "./protocol/dma.ts";
import { encodeCommand, encodeErrorReply, encodeMessage, encodeReply } from "./protocol/header.ts";
import { encodeRegionInfoReply, sparseMmapCap } from "./protocol/region.ts";
import { encodeVersion } from "./protocol/version.ts";
import { FakeFdTable } from "./testing/fake-fds.ts";
import { RawPeer, tick } from "./testing/harness.ts";

/** A client connected to a scripted raw "server". */
async function scripted(
  options: Parameters<typeof VfioUserClient.connect>[1] = {},
  versionReply = encodeVersion({ major: 0, minor: 0, capabilities: { maxMsgFds: 2 } }),
) {
  const fds = new FakeFdTable();
  const [clientEnd, serverEnd] = createMemoryTransportPair({
    dupFd: (fd) => fds.dup(fd),
    discardFd: (fd) => fds.close(fd),
  });
  const server = new RawPeer(serverEnd);
  const connecting = VfioUserClient.connect(clientEnd, { closeFd: (fd) => fds.close(fd), ...options });
  await server.waitFor(1);
  const v = server.received[0]!;
  assert.equal(v.header.command, Command.VERSION);
  server.send(encodeReply(v.header.id, Command.VERSION, versionReply));
  return { fds, server, connecting };
}

function isCode(code: string, errno?: number) {
  return (e: unknown) => {
    assert.ok(e instanceof VfioUserError, String(e));
    assert.equal(e.code, code);
    if (errno !== undefined) assert.equal(e.errno, errno);
    return true;
  };
}

test("VERSION proposal carries our capabilities; server caps get defaults", async () => {
  const { server, connecting } = await scripted({
    maxMsgFds: 4,
    maxDataXferBytes: 8192,
    capabilities: { pgsizes: 4096 },
  });
  const c = await connecting;
  const p = server.received[0]!.payload;
  assert.deepEqual([...p.subarray(0, 4)], [0, 0, 2, 0]);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(p.subarray(4, -1))), {
    capabilities: { max_msg_fds: 4, max_data_xfer_size: 8192, pgsizes: 4096 },
  });
  assert.equal(c.serverCapabilities.maxMsgFds, 2);
  assert.equal(c.serverCapabilities.maxDataXferSize, 1048576);
});

test("negotiation fails (and closes) on a reply with another major, a higher minor, or bad JSON", async () => {
  for (const reply of [
    encodeVersion({ major: 1, minor: 0 }),
    encodeVersion({ major: 0, minor: 3 }),
    Uint8Array.of(0, 0, 0, 0, 0x5b, 0),
  ]) {
    const { server, connecting } = await scripted({}, reply);
    await assert.rejects(connecting, isCode("negotiation-failed"));
    await tick();
    assert.ok(server.closed);
  }
});

test("the client serves DMA_READ/DMA_WRITE only inside its mappings and within its limits", async () => {
  const guest = new Uint8Array(0x2000);
  const { server, connecting } = await scripted({
    maxDataXferBytes: 4096,
    onDmaRead: (iova, n) =>
      iova === 0x1100 ? Errno.EIO : iova === 0x1200 ? new Uint8Array(n - 1) : guest.slice(iova, iova + n),
    onDmaWrite: (iova, d) => {
      guest.set(d, iova);
      return 0;
    },
  });
  const c = await connecting;
  const mapping = c.dmaMap({ iova: 0x1000, sizeBytes: 0x1000, flags: 1 });
  await server.waitFor(2);
  server.send(encodeReply(server.received[1]!.header.id, Command.DMA_MAP));
  await mapping;
  const send = (id: number, cmd: number, payload: Uint8Array) => server.send(encodeCommand(id, cmd, payload));
  send(1, Command.DMA_READ, encodeDmaAccess(0x1000, 4));
  send(2, Command.DMA_READ, encodeDmaAccess(0x1ffe, 4)); // crosses the end
  send(3, Command.DMA_WRITE, encodeDmaAccess(0x1000, 1, Uint8Array.of(1))); // read-only mapping
  send(4, Command.DMA_READ, encodeDmaAccess(0x1000, 4097));
  send(5, Command.DMA_READ, encodeDmaAccess(0x1100, 4));
  send(6, Command.DMA_READ, encodeDmaAccess(0x1200, 4));
  send(7, Command.DMA_WRITE, encodeDmaAccess(0x1000, 2, Uint8Array.of(1)));
  send(8, Command.VERSION, new Uint8Array(4));
  server.send(encodeMessage({ id: 9, command: Command.DMA_READ, flags: 0x3 }, encodeDmaAccess(0x1000, 4)));
  await server.waitFor(11);
  assert.deepEqual(
    server.received.slice(2).map((r) => [r.header.id, r.header.flags, r.header.errno, r.payload.byteLength]),
    [
      [1, 1, 0, 20],
      [2, 0x21, Errno.EFAULT, 0],
      [3, 0x21, Errno.EFAULT, 0],
      [4, 0x21, Errno.E2BIG, 0],
      [5, 0x21, Errno.EIO, 0],
      [6, 0x21, Errno.EIO, 0],
      [7, 0x21, Errno.EINVAL, 0],
      [8, 0x21, Errno.ENOTSUP, 0],
      [9, 0x21, Errno.EINVAL, 0],
    ],
  );
});

test("without handlers DMA requests get ENOTSUP", async () => {
  const { server, connecting } = await scripted();
  const c = await connecting;
  const m = c.dmaMap({ iova: 0, sizeBytes: 4096 });
  await server.waitFor(2);
  server.send(encodeReply(server.received[1]!.header.id, Command.DMA_MAP));
  await m;
  server.send(encodeCommand(1, Command.DMA_WRITE, encodeDmaAccess(0, 1, Uint8Array.of(1))));
  await server.waitFor(3);
  assert.equal(server.received[2]!.header.errno, Errno.ENOTSUP);
});

test("a mapping made with a buffer is served from it (not by the handlers); a buffer of the wrong size is refused", async () => {
  const handled: string[] = [];
  const { server, connecting } = await scripted({
    onDmaRead: (iova, n) => {
      handled.push(`read ${iova}`);
      return new Uint8Array(n).fill(0xee);
    },
    onDmaWrite: (iova) => {
      handled.push(`write ${iova}`);
      return 0;
    },
  });
  const c = await connecting;
  await assert.rejects(
    c.dmaMap({ iova: 0x4000, sizeBytes: 0x1000, buffer: new Uint8Array(0x800) }),
    isCode("invalid-request", Errno.EINVAL),
  );
  const buffer = new Uint8Array(0x1000).map((_, i) => i & 0xff);
  const m = c.dmaMap({ iova: 0x4000, sizeBytes: 0x1000, buffer });
  await server.waitFor(2);
  assert.equal(server.received[1]!.header.command, Command.DMA_MAP, "the refused map sent nothing");
  server.send(encodeReply(server.received[1]!.header.id, Command.DMA_MAP));
  await m;
  const m2 = c.dmaMap({ iova: 0x8000, sizeBytes: 0x1000 });
  await server.waitFor(3);
  server.send(encodeReply(server.received[2]!.header.id, Command.DMA_MAP));
  await m2;
  server.send(encodeCommand(1, Command.DMA_READ, encodeDmaAccess(0x4010, 4)));
  server.send(encodeCommand(2, Command.DMA_WRITE, encodeDmaAccess(0x4ffe, 2, Uint8Array.of(0xaa, 0xbb))));
  server.send(encodeCommand(3, Command.DMA_READ, encodeDmaAccess(0x4ffe, 4))); // crosses the end
  server.send(encodeCommand(4, Command.DMA_READ, encodeDmaAccess(0x8000, 2))); // no buffer: handler
  await server.waitFor(7);
  const [r1, r2, r3, r4] = server.received.slice(3);
  assert.deepEqual([...r1!.payload.subarray(16)], [0x10, 0x11, 0x12, 0x13]);
  assert.equal(r2!.header.errno, 0);
  assert.deepEqual([...buffer.subarray(0xffe)], [0xaa, 0xbb]);
  assert.equal(r3!.header.errno, Errno.EFAULT);
  assert.deepEqual([...r4!.payload.subarray(16)], [0xee, 0xee]);
  assert.deepEqual(handled, [`read ${0x8000}`]);
});

test("a failed DMA_MAP is forgotten: DMA to it is refused", async () => {
  const { server, connecting } = await scripted({ onDmaRead: (_i, n) => new Uint8Array(n) });
  const c = await connecting;
  const m = c.dmaMap({ iova: 0, sizeBytes: 4096 });
  await server.waitFor(2);
  server.send(encodeErrorReply(server.received[1]!.header.id, Command.DMA_MAP, Errno.EEXIST));
  await assert.rejects(m, isCode("remote-error", Errno.EEXIST));
  server.send(encodeCommand(1, Command.DMA_READ, encodeDmaAccess(0, 4)));
  await server.waitFor(3);
  assert.equal(server.received[2]!.header.errno, Errno.EFAULT);
});

test("region info: fds of a truncated reply and surplus fds are closed; the kept fd is the caller's", async () => {
  const { fds, server, connecting } = await scripted();
  const c = await connecting;
  const info = c.regionInfo(0);
  await server.waitFor(2);
  const caps = [sparseMmapCap([{ offset: 0x1000, sizeBytes: 0x1000 }])];
  const region = { flags: RegionFlag.READ | RegionFlag.MMAP, index: 0, sizeBytes: 0x4000, offset: 0, caps };
  const f1 = fds.open();
  server.send(encodeReply(server.received[1]!.header.id, 5, encodeRegionInfoReply(region, 32).payload), [f1]);
  await server.waitFor(3);
  const f2 = fds.open();
  const f3 = fds.open();
  server.send(encodeReply(server.received[2]!.header.id, 5, encodeRegionInfoReply(region, 64).payload), [
    f2,
    f3,
  ]);
  const r = await info;
  for (const f of [f1, f2, f3]) fds.close(f); // the raw server's own copies
  assert.deepEqual(r.sparseAreas, [{ offset: 0x1000, sizeBytes: 0x1000 }]);
  assert.ok(r.fd !== undefined);
  assert.deepEqual(fds.openFds(), [r.fd]);
  assert.deepEqual(fds.errors, []);
});

test("timeouts, unmatched replies, malformed messages and close", async () => {
  const { server, connecting } = await scripted({ replyTimeoutMs: 20 });
  const c = await connecting;
  await assert.rejects(c.reset(), isCode("timeout", Errno.ETIMEDOUT));
  server.send(encodeReply(0x7777, Command.DEVICE_RESET));
  const pending = c.deviceGetInfo();
  await server.waitFor(3);
  server.send(new Uint8Array(8)); // not even a header: the client gives up on the connection
  await assert.rejects(pending, isCode("disconnected"));
  assert.equal(c.isOpen, false);
  await assert.rejects(c.reset(), isCode("not-connected"));
});

test("posted region writes need no reply; pipelined requests settle with their own replies", async () => {
  const { server, connecting } = await scripted();
  const c = await connecting;
  await c.regionWrite(0, 0, Uint8Array.of(1), { posted: true });
  const a = c.regionRead(0, 0, 1);
  const b = c.regionRead(0, 1, 2);
  await server.waitFor(4);
  assert.equal(server.received[1]!.header.flags, 0x10);
  const [ra, rb] = [server.received[2]!, server.received[3]!];
  // answer out of order: matching is by id
  server.send(
    encodeReply(
      rb.header.id,
      Command.REGION_READ,
      Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 7, 8),
    ),
  );
  server.send(
    encodeReply(
      ra.header.id,
      Command.REGION_READ,
      Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5),
    ),
  );
  assert.deepEqual([...(await a)], [5]);
  assert.deepEqual([...(await b)], [7, 8]);
});
