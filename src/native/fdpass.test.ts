import assert from "node:assert/strict";
import { fstatSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { after, describe, it } from "node:test";
import {
  close,
  EAGAIN,
  eventfd,
  eventfdRead,
  eventfdWrite,
  ftruncate,
  memfdCreate,
  mmap,
  munmap,
  NativeError,
  type RecvmsgResult,
  recvmsg,
  sendmsg,
  sendmsgv,
  socketpair,
} from "./addon.ts";

const opened: number[] = [];
function track(...fds: number[]): void {
  opened.push(...fds);
}
after(() => {
  for (const fd of opened) {
    try {
      close(fd);
    } catch {
      // already closed by the test
    }
  }
});

/** A 16-byte header in the vfio-user layout: id, command, total size, flags, error. */
function header(id: number, totalBytes: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16LE(id, 0);
  h.writeUInt16LE(1, 2);
  h.writeUInt32LE(totalBytes, 4);
  return h;
}

function data(r: RecvmsgResult): { bytes: number; fds: number[]; eof: boolean; ctrunc: boolean } {
  assert.ok(!("errno" in r), `recvmsg failed: errno ${"errno" in r ? r.errno : 0}`);
  return r;
}

/** Reads exactly `length` bytes the way a vfio-user peer does, collecting fds. */
function readExact(fd: number, length: number): { bytes: Buffer; fds: number[] } {
  const bytes = Buffer.alloc(length);
  const fds: number[] = [];
  let filled = 0;
  while (filled < length) {
    const r = data(recvmsg(fd, bytes, filled, length - filled, 16));
    assert.equal(r.eof, false, "unexpected end of stream");
    fds.push(...r.fds);
    filled += r.bytes;
  }
  return { bytes, fds };
}

describe("fd passing over a socketpair (recvmsg/sendmsg with SCM_RIGHTS)", () => {
  it("delivers 3 fds with the first of two back-to-back messages and 1 with the second", () => {
    const [a, b] = socketpair();
    track(a, b);
    const memA = memfdCreate("fdpass-a");
    const memB = memfdCreate("fdpass-b");
    const efd = eventfd(0);
    track(memA, memB, efd);
    ftruncate(memA, 4096);
    ftruncate(memB, 8192);

    const payload1 = Buffer.from("first message payload");
    const payload2 = Buffer.from("second");
    const msg1 = Buffer.concat([header(1, 16 + payload1.length), payload1]);
    const msg2 = Buffer.concat([header(2, 16 + payload2.length), payload2]);
    assert.equal(sendmsg(a, msg1, 0, msg1.length, [memA, efd, memB]), msg1.length);
    assert.equal(sendmsg(a, msg2, 0, msg2.length, [memB]), msg2.length);
    // A third message without fds, sent as two pieces.
    const msg3 = header(3, 16);
    assert.equal(sendmsgv(a, [msg3.subarray(0, 5), msg3.subarray(5)]), 16);

    const h1 = readExact(b, 16);
    assert.equal(h1.bytes.readUInt16LE(0), 1);
    assert.equal(h1.fds.length, 3);
    track(...h1.fds);
    const p1 = readExact(b, h1.bytes.readUInt32LE(4) - 16);
    assert.deepEqual(p1.bytes, payload1);
    assert.equal(p1.fds.length, 0);

    const h2 = readExact(b, 16);
    assert.equal(h2.bytes.readUInt16LE(0), 2);
    assert.equal(h2.fds.length, 1);
    track(...h2.fds);
    assert.deepEqual(readExact(b, h2.bytes.readUInt32LE(4) - 16).bytes, payload2);

    const h3 = readExact(b, 16);
    assert.equal(h3.bytes.readUInt16LE(0), 3);
    assert.equal(h3.fds.length, 0);

    // The received fds are new numbers for the same files, in the order sent.
    const [rMemA, rEfd, rMemB] = h1.fds as [number, number, number];
    assert.equal(fstatSync(rMemA).size, 4096);
    assert.equal(fstatSync(rMemB).size, 8192);
    assert.equal(fstatSync(h2.fds[0]!).size, 8192);
    assert.notEqual(rMemA, memA);
    eventfdWrite(rEfd, 7n);
    assert.equal(eventfdRead(efd), 7n);

    // The received memfd shows the sender's writes, both ways.
    const senderView = new Uint8Array(mmap(memA, 4096, 0, true));
    const receiverView = new Uint8Array(mmap(rMemA, 4096, 0, true));
    senderView.set([1, 2, 3, 4], 100);
    assert.deepEqual([...receiverView.subarray(100, 104)], [1, 2, 3, 4]);
    receiverView[4095] = 0xee;
    assert.equal(senderView[4095], 0xee);
    munmap(senderView.buffer as ArrayBuffer);
    munmap(receiverView.buffer as ArrayBuffer);
  });

  it("stops a read at the fd-carrying send, so a header read never takes a neighbour's fds", () => {
    const [a, b] = socketpair();
    track(a, b);
    const mem = memfdCreate("boundary");
    track(mem);
    const plain = Buffer.alloc(100, 1);
    const withFd = Buffer.alloc(48, 2);
    assert.equal(sendmsg(a, plain, 0, plain.length), 100);
    assert.equal(sendmsg(a, withFd, 0, withFd.length, [mem]), 48);
    // An oversized read takes the fd-less bytes and the fd-carrying chunk, and stops there.
    const big = Buffer.alloc(1000);
    const r = data(recvmsg(b, big, 0, big.length, 4));
    assert.equal(r.bytes, 148);
    assert.equal(r.fds.length, 1);
    track(...r.fds);
  });

  it("reports ctrunc and closes the surplus when more fds arrive than maxFds", () => {
    const [a, b] = socketpair();
    track(a, b);
    const fds = [eventfd(), eventfd(), eventfd(), eventfd(), eventfd()];
    track(...fds);
    assert.equal(sendmsg(a, Buffer.from([9]), 0, 1, fds), 1);
    const r = data(recvmsg(b, Buffer.alloc(1), 0, 1, 2));
    assert.equal(r.ctrunc, true);
    assert.equal(r.fds.length, 2);
    track(...r.fds);
  });

  it("returns EAGAIN as a value when nothing is waiting, and eof after the peer closes", () => {
    const [a, b] = socketpair();
    track(b);
    const r = recvmsg(b, Buffer.alloc(8), 0, 8, 0);
    assert.equal(r.bytes, -1);
    assert.ok("errno" in r && r.errno === EAGAIN);
    close(a);
    const end = data(recvmsg(b, Buffer.alloc(8), 0, 8, 0));
    assert.equal(end.bytes, 0);
    assert.equal(end.eof, true);
  });

  it("returns EPIPE as a value when writing to a closed peer (no SIGPIPE)", () => {
    const [a, b] = socketpair();
    track(a);
    close(b);
    const r = sendmsg(a, Buffer.from("x"), 0, 1);
    assert.deepEqual(r, { errno: osConstants.errno.EPIPE });
  });

  it("rejects out-of-range arguments as our own bug (RangeError), not as a system error", () => {
    const [a, b] = socketpair();
    track(a, b);
    assert.throws(() => recvmsg(b, Buffer.alloc(4), 2, 4, 0), RangeError);
    assert.throws(() => sendmsg(a, Buffer.alloc(4), 0, 5), RangeError);
    assert.throws(() => sendmsg(a, Buffer.alloc(4), 0, 0, [b]), RangeError);
    assert.throws(() => recvmsg(b, Buffer.alloc(4), 0, 4, 254), RangeError);
  });

  it("throws NativeError with errno name and syscall for a failed call", () => {
    const notOpen = 1_000_000_000; // far above any fd limit
    assert.throws(
      () => close(notOpen),
      (e: unknown) =>
        e instanceof NativeError && e.code === "EBADF" && e.syscall === "close" && e.errno === 9,
    );
  });
});
