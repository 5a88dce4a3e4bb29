import assert from "node:assert/strict";
import { fstatSync, mkdtempSync, readSync, rmSync } from "node:fs";
import { constants as osConstants, tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { close, EAGAIN, ftruncate, memfdCreate, nativeStats, recvmsg, sendmsg, socketpair } from "./addon.ts";
import { GuestMemoryFd, mapFdRange } from "./guest-memory-fd.ts";
import { UnixListener } from "./unix-listener.ts";
import { closeAll, FdSocket, type ReadMessageResult } from "./unix-socket.ts";

const dir = mkdtempSync(join(tmpdir(), "nvmig-native-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** vfio-user-like framing: 16-byte header whose bytes 4..7 hold the total message size. */
function frame(id: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16LE(id, 0);
  h.writeUInt32LE(16 + payload.length, 4);
  return Buffer.concat([h, payload]);
}
const payloadBytesOf = (header: Buffer): number | null => {
  const total = header.readUInt32LE(4);
  return total < 16 ? null : total - 16;
};

function message(r: ReadMessageResult): Extract<ReadMessageResult, { kind: "message" }> {
  assert.equal(r.kind, "message", `expected a message, got ${JSON.stringify(r)}`);
  return r as Extract<ReadMessageResult, { kind: "message" }>;
}

/** A memfd whose size identifies it. */
function taggedMemfd(tag: number): number {
  const fd = memfdCreate(`tag-${tag}`);
  ftruncate(fd, tag);
  return fd;
}

describe("FdSocket", () => {
  it("reads messages with the fds they were sent with, also when they wait for readability", async () => {
    const [a, b] = FdSocket.pair();
    const reads = [b.readMessage(16, payloadBytesOf), b.readMessage(16, payloadBytesOf)];
    const m1 = taggedMemfd(111);
    const m2 = taggedMemfd(222);
    const m3 = taggedMemfd(333);
    assert.equal(a.write(frame(1, Buffer.from("one")), [m1, m2]), true);
    assert.equal(a.write([frame(2, Buffer.alloc(0))], [m3]), true);
    closeAll([m1, m2, m3]);
    const [r1, r2] = await Promise.all(reads);
    const msg1 = message(r1!);
    assert.equal(msg1.header.readUInt16LE(0), 1);
    assert.equal(msg1.payload.toString(), "one");
    assert.deepEqual(
      msg1.fds.map((fd) => fstatSync(fd).size),
      [111, 222],
    );
    const msg2 = message(r2!);
    assert.equal(msg2.payload.length, 0);
    assert.deepEqual(
      msg2.fds.map((fd) => fstatSync(fd).size),
      [333],
    );
    closeAll([...msg1.fds, ...msg2.fds]);
    a.close();
    b.close();
  });

  it("keeps fds with their message for any split of the writes (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            payloadBytes: fc.integer({ min: 0, max: 3000 }),
            fdCount: fc.integer({ min: 0, max: 3 }),
            cut: fc.integer({ min: 1, max: 3015 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        async (messages) => {
          const [a, b] = FdSocket.pair();
          const received: Array<{ id: number; payload: Buffer; tags: number[] }> = [];
          const reader = (async () => {
            for (let i = 0; i < messages.length; i++) {
              const m = message(await b.readMessage(16, payloadBytesOf));
              received.push({
                id: m.header.readUInt16LE(0),
                payload: m.payload,
                tags: m.fds.map((fd) => fstatSync(fd).size),
              });
              closeAll(m.fds);
            }
          })();
          messages.forEach((spec, id) => {
            const payload = Buffer.alloc(spec.payloadBytes, id & 0xff);
            const bytes = frame(id, payload);
            const fds = Array.from({ length: spec.fdCount }, (_, k) => taggedMemfd(1000 * (id + 1) + k));
            // Split each message into two sends; the fds ride on the first.
            const cut = Math.min(spec.cut, bytes.length);
            a.write(bytes.subarray(0, cut), fds);
            a.write(bytes.subarray(cut));
            closeAll(fds);
          });
          assert.deepEqual(await a.drain(), { ok: true });
          await reader;
          assert.equal(received.length, messages.length);
          received.forEach((r, id) => {
            const spec = messages[id]!;
            assert.equal(r.id, id);
            assert.equal(r.payload.length, spec.payloadBytes);
            assert.deepEqual(
              r.tags,
              Array.from({ length: spec.fdCount }, (_, k) => 1000 * (id + 1) + k),
            );
          });
          a.close();
          b.close();
        },
      ),
      { numRuns: 20 },
    );
  });

  it("queues what the kernel refuses (EAGAIN) and finishes it when the socket becomes writable", async () => {
    const [a, b] = FdSocket.pair();
    const big = Buffer.alloc(2 << 20);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    assert.equal(a.write(frame(7, big)), false, "2 MiB cannot fit a socket buffer");
    assert.ok(a.queuedBytes > 0);
    // A message queued behind it keeps its own copy of the fd: close ours right away.
    const mem = GuestMemoryFd.create("queued", 4096);
    mem.bytes()[0] = 0x42;
    assert.equal(a.write(frame(8, Buffer.from("tail")), [mem.fd]), false);
    const drained = a.drain();
    const first = message(await b.readMessage(16, payloadBytesOf));
    assert.equal(first.payload.length, big.length);
    assert.ok(first.payload.equals(big));
    assert.equal(first.fds.length, 0);
    const second = message(await b.readMessage(16, payloadBytesOf));
    assert.equal(second.payload.toString(), "tail");
    assert.equal(second.fds.length, 1);
    mem.close(); // the received fd stays a working file of its own
    assert.deepEqual(await drained, { ok: true });
    assert.equal(a.queuedBytes, 0);
    const copy = Buffer.alloc(1);
    readSync(second.fds[0]!, copy, 0, 1, 0);
    assert.equal(copy[0], 0x42);
    closeAll(second.fds);
    a.close();
    b.close();
  });

  it("reports end of stream mid-message with the bytes that did arrive", async () => {
    const [a, b] = FdSocket.pair();
    a.write(frame(1, Buffer.alloc(100)).subarray(0, 30));
    a.close();
    assert.deepEqual(await b.readMessage(16, payloadBytesOf), { kind: "eof", partialBytes: 14 });
    assert.deepEqual(await b.readExact(4), { kind: "eof", partialBytes: 0 });
    b.close();
  });

  it("refuses a header the caller calls invalid", async () => {
    const [a, b] = FdSocket.pair();
    const bad = Buffer.alloc(16);
    bad.writeUInt32LE(3, 4); // total size below the header size
    a.write(bad);
    const r = await b.readMessage(16, payloadBytesOf);
    assert.equal(r.kind, "invalid");
    a.close();
    b.close();
  });

  it("reports a broken pipe as writeErrno/drain result, and a local close to a pending read", async () => {
    const [a, b] = FdSocket.pair();
    const pending = a.readExact(4);
    b.close();
    assert.deepEqual(await pending, { kind: "eof", partialBytes: 0 });
    assert.equal(a.write(Buffer.from("x")), false);
    assert.equal(a.writeErrno, osConstants.errno.EPIPE);
    assert.deepEqual(await a.drain(), { ok: false, errno: osConstants.errno.EPIPE, code: "EPIPE" });
    const [c, d] = FdSocket.pair();
    const waiting = c.readExact(4);
    c.close();
    assert.deepEqual(await waiting, { kind: "closed" });
    assert.deepEqual(await c.readExact(1), { kind: "closed" });
    c.close();
    d.close();
    a.close();
  });
});

describe("raw EAGAIN with a full socket buffer", () => {
  it("sendmsg returns EAGAIN once the buffer is full; draining returns every byte", () => {
    const [a, b] = socketpair();
    const chunk = Buffer.alloc(64 * 1024, 0x77);
    let sent = 0;
    let sawEagain = false;
    for (let i = 0; i < 10_000 && !sawEagain; i++) {
      const n = sendmsg(a, chunk, 0, chunk.length);
      if (typeof n === "number") sent += n;
      else if (n.errno === EAGAIN) sawEagain = true;
      else assert.fail(`errno ${n.errno}`);
    }
    assert.ok(sawEagain, "the socket buffer never filled");
    let received = 0;
    const sink = Buffer.alloc(256 * 1024);
    for (;;) {
      const r = recvmsg(b, sink, 0, sink.length, 0);
      if ("errno" in r) {
        assert.equal(r.errno, EAGAIN);
        break;
      }
      received += r.bytes;
    }
    assert.equal(received, sent);
    assert.equal(typeof sendmsg(a, chunk, 0, 1), "number", "writable again after draining");
    close(a);
    close(b);
  });
});

describe("UnixListener", () => {
  it("accepts a connection made with FdSocket.connect and passes an fd each way", async () => {
    const path = join(dir, "round-trip.sock");
    const watchesBefore = nativeStats().watches;
    const listener = UnixListener.listen(path);
    const accepted = listener.accept();
    const client = FdSocket.connect(path);
    const server = await accepted;
    assert.ok(server !== null);

    const ram = GuestMemoryFd.create("client-ram", 65536);
    client.write(frame(1, Buffer.from("map")), [ram.fd]);
    const req = message(await server.readMessage(16, payloadBytesOf));
    assert.equal(req.fds.length, 1);
    const serverRam = mapFdRange(req.fds[0]!, 0, 65536, true);
    serverRam.bytes[1234] = 0x99; // device writes guest memory
    assert.equal(ram.bytes()[1234], 0x99);

    const bar = GuestMemoryFd.create("server-bar", 4096);
    server.write(frame(1, Buffer.alloc(0)), [bar.fd]);
    const reply = message(await client.readMessage(16, payloadBytesOf));
    assert.equal(reply.fds.length, 1);
    assert.equal(fstatSync(reply.fds[0]!).size, 4096);

    serverRam.unmap();
    closeAll([...req.fds, ...reply.fds]);
    ram.close();
    bar.close();
    client.close();
    server.close();
    const next = listener.accept();
    listener.close();
    assert.equal(await next, null);
    assert.equal(nativeStats().watches, watchesBefore);
  });
});
