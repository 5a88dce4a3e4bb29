import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, fstatSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { close, ftruncate, memfdCreate } from "../native/addon.ts";
import { FdSocket } from "../native/unix-socket.ts";
import { VfioUserClient } from "./client.ts";
import { Command } from "./protocol/constants.ts";
import { decodeHeader, encodeCommand } from "./protocol/header.ts";
import { isDecodeError } from "./protocol/wire.ts";
import { VfioUserServer } from "./server.ts";
import { listenVfioUser, SocketTransport } from "./socket-transport.ts";
import { FakeBackend } from "./testing/fake-backend.ts";
import type { TransportMessage } from "./transport.ts";

const dir = mkdtempSync(join(tmpdir(), "nvmig-vfu-sock-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A memfd whose size identifies it. */
function taggedMemfd(tag: number): number {
  const fd = memfdCreate(`tag-${tag}`);
  ftruncate(fd, tag);
  return fd;
}

/** Collects messages until `n` arrived. */
function collect(t: SocketTransport, n: number): Promise<TransportMessage[]> {
  const got: TransportMessage[] = [];
  return new Promise((resolve) => {
    t.onMessage((m) => {
      got.push(m);
      if (got.length === n) resolve(got);
    });
  });
}

function closed(t: SocketTransport): Promise<void> {
  return new Promise((resolve) => t.onClose(resolve));
}

function sizeOf(fd: number): number {
  return fstatSync(fd).size;
}

describe("SocketTransport", () => {
  it("delivers whole messages in order with the fds each was sent with", async () => {
    const [a, b] = SocketTransport.pair();
    const got = collect(b, 4);
    const m1 = taggedMemfd(101);
    const m2 = taggedMemfd(202);
    const m3 = taggedMemfd(303);
    a.send(encodeCommand(1, Command.DMA_MAP, new Uint8Array(32)), [m1, m2]);
    a.send(encodeCommand(2, Command.DEVICE_GET_INFO, new Uint8Array(16)), []);
    a.send(encodeCommand(3, Command.DEVICE_SET_IRQS, new Uint8Array(20)), [m3]);
    a.send(encodeCommand(4, Command.DEVICE_RESET), []);
    // send() leaves the caller's fds alone: closing ours must not affect what the peer got.
    for (const fd of [m1, m2, m3]) close(fd);
    const msgs = await got;
    const ids = msgs.map((m) => {
      const h = decodeHeader(m.bytes);
      assert.ok(!isDecodeError(h));
      assert.equal(h.sizeBytes, m.bytes.byteLength);
      return h.id;
    });
    assert.deepEqual(ids, [1, 2, 3, 4]);
    assert.deepEqual(msgs[0]!.fds.map(sizeOf), [101, 202]);
    assert.deepEqual(msgs[1]!.fds, []);
    assert.deepEqual(msgs[2]!.fds.map(sizeOf), [303]);
    assert.deepEqual(msgs[3]!.fds, []);
    assert.equal(msgs[0]!.bytes.byteLength, 16 + 32);
    assert.ok(!Buffer.isBuffer(msgs[0]!.bytes), "delivered bytes are plain Uint8Arrays");
    for (const m of msgs) for (const fd of m.fds) close(fd);
    a.close();
    b.close();
  });

  it("carries messages of several MiB intact, in both directions at once", async () => {
    const [a, b] = SocketTransport.pair();
    const big = new Uint8Array(randomBytes(5 * 1048576 + 13));
    const toB = collect(b, 2);
    const toA = collect(a, 1);
    a.send(encodeCommand(7, Command.REGION_WRITE, big), []);
    a.send(encodeCommand(8, Command.DEVICE_RESET), []);
    b.send(encodeCommand(9, Command.DMA_WRITE, big.subarray(0, 3 * 1048576)), []);
    const [m1, m2] = await toB;
    assert.equal(m1!.bytes.byteLength, 16 + big.byteLength);
    assert.ok(Buffer.from(m1!.bytes.subarray(16)).equals(Buffer.from(big)));
    assert.equal(m2!.bytes.byteLength, 16);
    const [back] = await toA;
    assert.ok(Buffer.from(back!.bytes.subarray(16)).equals(Buffer.from(big.subarray(0, 3 * 1048576))));
    a.close();
    b.close();
  });

  it("delivers only the header of a message over the size limit and stays in step", async () => {
    const [a, b] = SocketTransport.pair({ maxMessageBytes: 4096 });
    const got = collect(b, 2);
    const fd = taggedMemfd(77);
    a.send(encodeCommand(1, Command.REGION_WRITE, new Uint8Array(100_000).fill(0xab)), [fd]);
    a.send(encodeCommand(2, Command.DEVICE_RESET), []);
    close(fd);
    const [over, next] = await got;
    assert.equal(over!.bytes.byteLength, 16);
    const h = decodeHeader(over!.bytes);
    assert.ok(!isDecodeError(h));
    assert.equal(h.sizeBytes, 16 + 100_000);
    assert.deepEqual(over!.fds.map(sizeOf), [77], "the fds of the header still come with it");
    for (const f of over!.fds) close(f);
    const h2 = decodeHeader(next!.bytes);
    assert.ok(!isDecodeError(h2));
    assert.equal(h2.id, 2);
    a.close();
    b.close();
  });

  it("hands over an unframeable header (size < 16) and reads nothing after it", async () => {
    const [raw, peer] = FdSocket.pair();
    const b = new SocketTransport(peer);
    const got: TransportMessage[] = [];
    b.onMessage((m) => got.push(m));
    const bad = Buffer.alloc(16);
    bad.writeUInt32LE(8, 4);
    raw.write([bad, encodeCommand(5, Command.DEVICE_RESET)]);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.bytes.byteLength, 16);
    raw.close();
    b.close();
  });

  it("reports a peer close once, after the messages sent before it, and drops later sends", async () => {
    const [a, b] = SocketTransport.pair();
    const seen: string[] = [];
    b.onMessage(() => seen.push("message"));
    const done = closed(b);
    b.onClose(() => seen.push("close"));
    a.send(encodeCommand(1, Command.DEVICE_RESET), []);
    a.send(encodeCommand(2, Command.DEVICE_RESET), []);
    a.close();
    a.close(); // idempotent
    await done;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, ["message", "message", "close"]);
    assert.equal(b.isOpen, false);
    assert.equal(a.isOpen, false);
    // After the close: send is a no-op, a late onClose handler still runs.
    a.send(encodeCommand(3, Command.DEVICE_RESET), []);
    b.send(encodeCommand(3, Command.DEVICE_RESET), []);
    await closed(b);
    await closed(a);
  });

  it("closes the local end: the peer sees the close, a pending read ends", async () => {
    const [a, b] = SocketTransport.pair();
    a.onMessage(() => {});
    b.onMessage(() => {});
    const both = Promise.all([closed(a), closed(b)]);
    b.close();
    await both;
  });
});

describe("listenVfioUser", () => {
  it("accepts clients on a 0600 socket file and serves the protocol; close removes the file", async () => {
    const path = join(dir, "dev.sock");
    const server = new VfioUserServer({ backend: new FakeBackend({ closeFd: (fd) => close(fd) }) });
    const listener = listenVfioUser(path, (t) => server.attach(t));
    assert.ok(existsSync(path));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const client = await VfioUserClient.connect(SocketTransport.connect(path));
    const info = await client.deviceGetInfo();
    assert.ok(info.numRegions >= 9);
    client.close();
    // A second client after the first left is accepted too.
    await new Promise((r) => setTimeout(r, 20));
    const again = await VfioUserClient.connect(SocketTransport.connect(path));
    assert.equal(again.serverVersion.major, 0);
    again.close();
    listener.close();
    listener.close();
    server.close();
    assert.equal(existsSync(path), false);
  });

  it("refuses to bind over an existing file unless asked to replace it", () => {
    const path = join(dir, "stale.sock");
    const first = listenVfioUser(path, (t) => t.close());
    assert.throws(() => listenVfioUser(path, (t) => t.close()), /EADDRINUSE/);
    const second = listenVfioUser(path, (t) => t.close(), { replaceExisting: true });
    second.close();
    first.close();
  });
});
