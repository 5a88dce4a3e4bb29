import assert from "node:assert/strict";
import { test } from "node:test";
import { createMemoryTransportPair } from "./memory-transport.ts";
import { FakeFdTable } from "./testing/fake-fds.ts";
import type { TransportMessage } from "./transport.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));

test("messages arrive whole, in order, copied, with fds duplicated into the receiver", async () => {
  const fds = new FakeFdTable();
  const [a, b] = createMemoryTransportPair({ dupFd: (fd) => fds.dup(fd), discardFd: (fd) => fds.close(fd) });
  const got: TransportMessage[] = [];
  b.onMessage((m) => got.push(m));
  const buf = Uint8Array.of(1, 2, 3);
  const fd = fds.open();
  a.send(buf, [fd]);
  a.send(Uint8Array.of(4), []);
  buf[0] = 9; // the sender may reuse its buffer at once
  assert.equal(got.length, 0, "asynchronous by default");
  await tick();
  assert.deepEqual(
    got.map((m) => [...m.bytes]),
    [[1, 2, 3], [4]],
  );
  assert.equal(got[0]!.fds.length, 1);
  assert.notEqual(got[0]!.fds[0], fd);
  assert.ok(fds.isOpen(fd) && fds.isOpen(got[0]!.fds[0]!));
  assert.deepEqual(got[1]!.fds, []);
});

test("messages sent before the handler is set are queued", async () => {
  const [a, b] = createMemoryTransportPair();
  a.send(Uint8Array.of(1), []);
  await tick();
  const got: number[] = [];
  b.onMessage((m) => got.push(m.bytes[0]!));
  await tick();
  assert.deepEqual(got, [1]);
});

test("close is seen once by both ends; later sends are dropped; undelivered fds are closed", async () => {
  const fds = new FakeFdTable();
  const [a, b] = createMemoryTransportPair({ dupFd: (fd) => fds.dup(fd), discardFd: (fd) => fds.close(fd) });
  let aClosed = 0;
  let bClosed = 0;
  a.onClose(() => aClosed++);
  b.onClose(() => bClosed++);
  const fd = fds.open();
  a.send(Uint8Array.of(1), [fd]); // queued in b, no handler yet
  b.close();
  b.close();
  assert.equal(a.isOpen, false);
  a.send(Uint8Array.of(2), []);
  await tick();
  assert.equal(aClosed, 1);
  assert.equal(bClosed, 1);
  assert.deepEqual(fds.openFds(), [fd], "the duplicate that was never delivered is closed");
  assert.deepEqual(fds.errors, []);
  let late = 0;
  a.onClose(() => late++);
  await tick();
  assert.equal(late, 1, "a handler added after close still runs");
});

test("synchronous mode delivers inside send, including replies sent from the handler", () => {
  const [a, b] = createMemoryTransportPair({ synchronous: true });
  const seen: string[] = [];
  b.onMessage((m) => {
    seen.push(`b:${m.bytes[0]}`);
    b.send(Uint8Array.of(m.bytes[0]! + 100), []);
  });
  a.onMessage((m) => {
    seen.push(`a:${m.bytes[0]}`);
    if (m.bytes[0] === 101) a.send(Uint8Array.of(2), []);
  });
  a.send(Uint8Array.of(1), []);
  assert.deepEqual(seen, ["b:1", "a:101", "b:2", "a:102"]);
});

test("messages sent before close() still reach the peer, which then sees the close", async () => {
  const [a, b] = createMemoryTransportPair();
  const got: number[] = [];
  let closedAfter = -1;
  b.onMessage((m) => got.push(m.bytes[0]!));
  b.onClose(() => {
    closedAfter = got.length;
  });
  a.send(Uint8Array.of(1), []);
  a.send(Uint8Array.of(2), []);
  a.close();
  await tick();
  await tick();
  assert.deepEqual(got, [1, 2]);
  assert.equal(closedAfter, 2);
  assert.equal(b.isOpen, false);
});
