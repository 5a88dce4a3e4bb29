/**
 * Test wiring: a `VfioUserServer` over a `FakeBackend`, an in-memory transport pair whose fds come
 * from a `FakeFdTable`, and a raw peer for sending hand-made (or broken) messages. Not API.
 */
import assert from "node:assert/strict";
import { VfioUserClient, type VfioUserClientOptions } from "../client.ts";
import { VfioUserError } from "../errors.ts";
import type { VfioUserEvent } from "../events.ts";
import { createMemoryTransportPair } from "../memory-transport.ts";
import { Command } from "../protocol/constants.ts";
import { decodeHeader, encodeCommand, type MessageHeader, payloadOf } from "../protocol/header.ts";
import { encodeVersion } from "../protocol/version.ts";
import { isDecodeError } from "../protocol/wire.ts";
import { VfioUserServer, type VfioUserServerOptions } from "../server.ts";
import type { MessageTransport } from "../transport.ts";
import { FakeBackend } from "./fake-backend.ts";
import { FakeFdTable } from "./fake-fds.ts";

export interface Harness {
  fds: FakeFdTable;
  /** The backend's own BAR0 fd (always open). */
  bar0Fd: number;
  backend: FakeBackend;
  server: VfioUserServer;
  events: VfioUserEvent[];
  /** Creates a new transport pair, attaches its server end; returns the client end. */
  newConnection(): { clientEnd: MessageTransport; attached: boolean };
}

export function createHarness(
  opts: { server?: Partial<VfioUserServerOptions>; synchronous?: boolean; bar0Mmap?: boolean } = {},
): Harness {
  const fds = new FakeFdTable();
  const bar0Fd = fds.open();
  const closeFd = (fd: number) => fds.close(fd);
  const backend = new FakeBackend(opts.bar0Mmap === false ? { closeFd } : { closeFd, bar0MmapFd: bar0Fd });
  const events: VfioUserEvent[] = [];
  const server = new VfioUserServer({ backend, closeFd, log: (e) => events.push(e), ...opts.server });
  const transportOptions = {
    dupFd: (fd: number) => fds.dup(fd),
    discardFd: closeFd,
    ...(opts.synchronous === true ? { synchronous: true } : {}),
  };
  return {
    fds,
    bar0Fd,
    backend,
    server,
    events,
    newConnection() {
      const [serverEnd, clientEnd] = createMemoryTransportPair(transportOptions);
      const attached = server.attach(serverEnd);
      return { clientEnd, attached };
    },
  };
}

/** Connects a `VfioUserClient` on a fresh connection of `h`. */
export function connectClient(h: Harness, options: VfioUserClientOptions = {}): Promise<VfioUserClient> {
  const { clientEnd } = h.newConnection();
  return VfioUserClient.connect(clientEnd, {
    closeFd: (fd) => h.fds.close(fd),
    replyTimeoutMs: 2000,
    ...options,
  });
}

export interface RawReceived {
  header: MessageHeader;
  payload: Uint8Array;
  fds: number[];
}

/** A peer that sends raw bytes and records what comes back. */
export class RawPeer {
  readonly received: RawReceived[] = [];
  closed = false;
  #waiters: (() => void)[] = [];

  constructor(readonly transport: MessageTransport) {
    transport.onMessage((m) => {
      const h = decodeHeader(m.bytes);
      assert.ok(!isDecodeError(h), "server sent a message shorter than a header");
      this.received.push({ header: h, payload: payloadOf(m.bytes).slice(), fds: m.fds });
      for (const w of this.#waiters.splice(0)) w();
    });
    transport.onClose(() => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  send(bytes: Uint8Array, fds: number[] = []): void {
    this.transport.send(bytes, fds);
  }

  /** Waits until `n` messages were received in total (or the connection closed). */
  async waitFor(n: number): Promise<void> {
    while (this.received.length < n && !this.closed) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** Sends a VERSION 0.0 without JSON and waits for its reply. */
  async negotiate(): Promise<void> {
    const before = this.received.length;
    this.send(encodeCommand(0xfff0, Command.VERSION, encodeVersion({ major: 0, minor: 0 })));
    await this.waitFor(before + 1);
    assert.equal(this.received[before]?.header.flags, 1, "VERSION accepted");
  }
}

/** Asserts that `p` rejects with a remote error carrying `errno`. */
export async function rejectsWithErrno(p: Promise<unknown>, errno: number): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof VfioUserError, String(e));
    assert.equal(e.code, "remote-error");
    assert.equal(e.errno, errno);
    return true;
  });
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
