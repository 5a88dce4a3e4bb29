/**
 * Fuzz target for `VfioUserServer`, shared by the unit test (`server.fuzz.test.ts`) and the long run
 * (`scripts/fuzz-vfio-user.ts`). Not API.
 *
 * Inputs: valid messages of every command (with random fields), the same with byte / length / size /
 * flag / command mutations, and pure random bytes; each with 0–10 fds attached. Everything runs
 * synchronously (synchronous in-memory transport, synchronous fake backend), so "no hang" is checked
 * exactly: after `send` returns, the message must have been fully handled.
 *
 * Properties checked after every input:
 * 1. the server never throws (an exception escapes into `send` and fails the case) and never reports
 *    `backend-threw` (the fake backend throws when the server passes it something it promised not to);
 * 2. a command is answered by exactly one reply with its id and command — none with NO_REPLY; a reply
 *    is never answered; the connection is closed only for untrusted framing (< 16 bytes, size < 16,
 *    size ≠ bytes) or a VERSION with another major before negotiation;
 * 3. no fd leaks: every open fd is the backend's BAR fd or one the backend holds;
 * 4. the server keeps serving: a valid DEVICE_GET_INFO right after is answered (on a new connection
 *    if the old one was closed).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { VfioUserEvent } from "../events.ts";
import { createMemoryTransportPair } from "../memory-transport.ts";
import {
  Command,
  DeviceFeatureFlag,
  Errno,
  HEADER_BYTES,
  HeaderFlag,
  MessageType,
} from "../protocol/constants.ts";
import { encodeDeviceInfoRequest } from "../protocol/device-info.ts";
import { encodeDmaAccess, encodeDmaMap, encodeDmaUnmap } from "../protocol/dma.ts";
import { encodeDeviceFeature } from "../protocol/feature.ts";
import { decodeHeader, encodeMessage, type MessageHeader } from "../protocol/header.ts";
import { encodeIrqInfo, encodeSetIrqs } from "../protocol/irq.ts";
import { encodeMigData } from "../protocol/mig-data.ts";
import { encodeRegionAccess, encodeRegionInfoRequest, encodeWriteMulti } from "../protocol/region.ts";
import { encodeVersion } from "../protocol/version.ts";
import { isDecodeError } from "../protocol/wire.ts";
import { VfioUserServer } from "../server.ts";
import type { MessageTransport } from "../transport.ts";
import { FakeBackend } from "./fake-backend.ts";
import { FakeFdTable } from "./fake-fds.ts";

/** Server limits used while fuzzing: small, so E2BIG / ENOSPC paths are reachable. */
export const FUZZ_MAX_DATA_XFER_BYTES = 4096;
export const FUZZ_MAX_MESSAGE_BYTES = 8192;
export const FUZZ_MAX_DMA_MAPS = 32;

export interface FuzzCase {
  /** Start from a new connection before sending (`negotiated`: run VERSION first). */
  fresh: { negotiated: boolean } | undefined;
  bytes: Uint8Array;
  fdCount: number;
}

// ---------------------------------------------------------------- generators

const page = fc.integer({ min: 0, max: 63 }).map((n) => n * 4096);
const smallCount = fc.oneof(
  fc.integer({ min: 0, max: 16 }),
  fc.constantFrom(4095, 4096, 4097, 8192, 0xffffffff),
);
const regionIndex = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(0, 7) },
  { weight: 1, arbitrary: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.constant(0xdeadbeef)) },
);
const regionOffset = fc.oneof(
  fc.integer({ min: 0, max: 0x4010 }),
  fc.constantFrom(0xff, 0x100, 0x3ffc, 0x4000, 2 ** 40),
);
const u32 = fc.integer({ min: 0, max: 0xffffffff });

interface Template {
  command: number;
  payload: Uint8Array;
  fdCount: number;
}

const versionJson = fc.constantFrom(
  undefined,
  "{}",
  '{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"write_multiple":true}}',
  '{"capabilities":{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"pgsizes":4096}}',
  '{"capabilities":{"max_data_xfer_size":1}}',
  "[]",
  "null",
  '{"capabilities":[]}',
  '{"capabilities":{"max_msg_fds":"x"}}',
  "{",
);

function versionPayload(major: number, minor: number, json: string | undefined): Uint8Array {
  const base = encodeVersion({ major, minor });
  if (json === undefined) return base;
  const j = new TextEncoder().encode(json);
  const out = new Uint8Array(4 + j.byteLength + 1);
  out.set(base.subarray(0, 4));
  out.set(j, 4);
  return out;
}

const templates: fc.Arbitrary<Template> = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 3 }), versionJson)
    .map(([major, minor, json]) => ({
      command: Command.VERSION,
      payload: versionPayload(major, minor, json),
      fdCount: 0,
    })),
  fc
    .tuple(
      fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) },
        { weight: 1, arbitrary: fc.nat(15) },
      ),
      page,
      fc.integer({ min: 0, max: 8 }),
      fc.integer({ min: 0, max: 2 }),
    )
    .map(([flags, iova, pages, fdCount]) => ({
      command: Command.DMA_MAP,
      payload: encodeDmaMap({ flags, offset: 0, address: iova, sizeBytes: pages * 4096 }),
      fdCount,
    })),
  fc
    .tuple(
      fc.integer({ min: 0, max: 3 }),
      page,
      fc.integer({ min: 0, max: 8 }),
      fc.integer({ min: 0, max: 1 }),
    )
    .map(([flags, iova, pages, fdCount]) => ({
      command: Command.DMA_UNMAP,
      payload:
        flags === 2
          ? encodeDmaUnmap({ flags, address: 0, sizeBytes: 0 })
          : encodeDmaUnmap({ flags, address: iova, sizeBytes: pages * 4096 }),
      fdCount,
    })),
  fc.integer({ min: 0, max: 32 }).map((argsz) => ({
    command: Command.DEVICE_GET_INFO,
    payload: encodeDeviceInfoRequest(argsz),
    fdCount: 0,
  })),
  fc.tuple(regionIndex, fc.constantFrom(16, 32, 63, 64, 4064)).map(([index, argsz]) => {
    const p = encodeRegionInfoRequest(index, argsz);
    if (argsz !== 4064) return { command: Command.DEVICE_GET_REGION_INFO, payload: p, fdCount: 0 };
    const spdk = new Uint8Array(4064); // SPDK sends argsz-sized requests
    spdk.set(p);
    return { command: Command.DEVICE_GET_REGION_INFO, payload: spdk, fdCount: 0 };
  }),
  fc.tuple(fc.integer({ min: 0, max: 6 }), fc.constantFrom(15, 16, 32)).map(([index, argsz]) => ({
    command: Command.DEVICE_GET_IRQ_INFO,
    payload: encodeIrqInfo({ argsz, flags: 0, index, count: 0 }),
    fdCount: 0,
  })),
  fc
    .tuple(
      fc.constantFrom(0x21, 0x24, 0x11, 0x14, 0x09, 0x0c, 0x22, 0x12, 0x24, 0x3f, 0, 0x41),
      fc.integer({ min: 0, max: 5 }),
      fc.integer({ min: 0, max: 18 }),
      fc.integer({ min: 0, max: 18 }),
      fc.integer({ min: 0, max: 10 }),
    )
    .map(([flags, index, start, count, fdCount]) => ({
      command: Command.DEVICE_SET_IRQS,
      payload: encodeSetIrqs({
        flags,
        index,
        start,
        count,
        ...((flags & 2) !== 0 ? { bools: new Uint8Array(count).fill(1) } : {}),
      }),
      fdCount: (flags & 4) !== 0 && fdCount > 6 ? count : fdCount % 3,
    })),
  fc.tuple(regionIndex, regionOffset, smallCount).map(([region, offset, count]) => ({
    command: Command.REGION_READ,
    payload: encodeRegionAccess({ offset, region, count }),
    fdCount: 0,
  })),
  fc
    .tuple(regionIndex, regionOffset, fc.integer({ min: 0, max: 4100 }), fc.boolean())
    .map(([region, offset, count, lie]) => ({
      command: Command.REGION_WRITE,
      payload: encodeRegionAccess({ offset, region, count: lie ? count + 1 : count }, new Uint8Array(count)),
      fdCount: 0,
    })),
  fc.constant({ command: Command.DEVICE_RESET, payload: new Uint8Array(0), fdCount: 0 }),
  fc
    .array(fc.tuple(regionIndex, regionOffset, fc.integer({ min: 0, max: 9 })), { maxLength: 4 })
    .map((ws) => ({
      command: Command.REGION_WRITE_MULTI,
      payload: encodeWriteMulti(
        ws.map(([region, offset, count]) => ({ region, offset, count, data: new Uint8Array(8) })),
      ),
      fdCount: 0,
    })),
  fc
    .tuple(
      fc.integer({ min: 0, max: 9 }),
      fc.constantFrom(
        DeviceFeatureFlag.GET,
        DeviceFeatureFlag.SET,
        DeviceFeatureFlag.PROBE,
        0,
        DeviceFeatureFlag.GET | DeviceFeatureFlag.SET,
        1 << 20,
      ),
      fc.integer({ min: 0, max: 32 }),
      fc.integer({ min: 0, max: 128 }),
    )
    .map(([feature, op, dataBytes, argszExtra]) => ({
      command: Command.DEVICE_FEATURE,
      payload: encodeDeviceFeature({
        argsz: 8 + argszExtra,
        flags: feature | op,
        data: new Uint8Array(dataBytes),
      }),
      fdCount: 0,
    })),
  fc.tuple(smallCount, fc.integer({ min: 0, max: 4200 })).map(([size, argszExtra]) => ({
    command: Command.MIG_DATA_READ,
    payload: encodeMigData({ argsz: 8 + argszExtra, sizeBytes: size }),
    fdCount: 0,
  })),
  fc.tuple(fc.integer({ min: 0, max: 4100 }), fc.boolean()).map(([size, lie]) => ({
    command: Command.MIG_DATA_WRITE,
    payload: encodeMigData({ argsz: 8, sizeBytes: lie ? size + 3 : size, data: new Uint8Array(size) }),
    fdCount: 0,
  })),
  fc
    .tuple(
      fc.constantFrom(
        Command.DMA_READ,
        Command.DMA_WRITE,
        Command.DEVICE_GET_REGION_IO_FDS,
        0,
        14,
        19,
        0xffff,
      ),
      fc.uint8Array({ maxLength: 40 }),
    )
    .map(([command, payload]) => ({
      command,
      payload: command === Command.DMA_READ ? encodeDmaAccess(0, 8) : payload,
      fdCount: 0,
    })),
);

type Mutation =
  | { kind: "byte"; at: number; value: number }
  /** `keepFraming`: rewrite the size field to the new length (the payload decoders see it). */
  | { kind: "truncate"; at: number; keepFraming: boolean }
  | { kind: "append"; bytes: Uint8Array; keepFraming: boolean }
  | { kind: "size"; value: number }
  | { kind: "flags"; value: number }
  | { kind: "command"; value: number };

const keepFraming = fc.oneof(
  { weight: 4, arbitrary: fc.constant(true) },
  { weight: 1, arbitrary: fc.constant(false) },
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("byte" as const), at: fc.nat(80), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant("truncate" as const),
    at: fc.oneof(
      { weight: 1, arbitrary: fc.nat(15) },
      { weight: 4, arbitrary: fc.integer({ min: 16, max: 80 }) },
    ),
    keepFraming: keepFraming,
  }),
  fc.record({
    kind: fc.constant("append" as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
    keepFraming: keepFraming,
  }),
  fc.record({
    kind: fc.constant("size" as const),
    value: fc.oneof(fc.integer({ min: 0, max: 96 }), fc.constantFrom(8191, 8192, 8193, 0xffffffff)),
  }),
  fc.record({ kind: fc.constant("flags" as const), value: fc.oneof(fc.integer({ min: 0, max: 0x3f }), u32) }),
  fc.record({ kind: fc.constant("command" as const), value: fc.integer({ min: 0, max: 20 }) }),
);

function fixSize(b: Uint8Array): void {
  if (b.byteLength >= 8) new DataView(b.buffer, b.byteOffset).setUint32(4, b.byteLength, true);
}

function applyMutations(msg: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = msg;
  for (const m of ms) {
    switch (m.kind) {
      case "byte":
        if (b.byteLength > 0) b[m.at % b.byteLength] = m.value;
        break;
      case "truncate":
        b = b.slice(0, Math.min(m.at, b.byteLength));
        if (m.keepFraming) fixSize(b);
        break;
      case "append": {
        const n = new Uint8Array(b.byteLength + m.bytes.byteLength);
        n.set(b);
        n.set(m.bytes, b.byteLength);
        b = n;
        if (m.keepFraming) fixSize(b);
        break;
      }
      case "size":
        if (b.byteLength >= 8) new DataView(b.buffer, b.byteOffset).setUint32(4, m.value, true);
        break;
      case "flags":
        if (b.byteLength >= 12) new DataView(b.buffer, b.byteOffset).setUint32(8, m.value, true);
        break;
      case "command":
        if (b.byteLength >= 4) new DataView(b.buffer, b.byteOffset).setUint16(2, m.value, true);
        break;
    }
  }
  return b;
}

/** About one input in 25 starts on a new connection (half of those before VERSION). */
const fresh: fc.Arbitrary<{ negotiated: boolean } | undefined> = fc.oneof(
  { weight: 24, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.record({ negotiated: fc.boolean() }) },
);
const fdCount = fc.oneof(
  { weight: 8, arbitrary: fc.constant(-1) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 10 }) },
);

const noReply = fc.oneof(
  { weight: 7, arbitrary: fc.constant(false) },
  { weight: 1, arbitrary: fc.constant(true) },
);
/** Mutations per message: none for a third of the inputs (valid messages must work too). */
const mutations: fc.Arbitrary<Mutation[]> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Mutation[]>([]) },
  { weight: 2, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
);

const fromTemplate = fc
  .tuple(templates, fc.integer({ min: 0, max: 0xffff }), noReply, mutations, fresh, fdCount)
  .map(([t, id, noReply, muts, fr, fds]): FuzzCase => {
    const msg = encodeMessage(
      { id, command: t.command, flags: noReply ? HeaderFlag.NO_REPLY : 0 },
      t.payload,
    );
    return { fresh: fr, bytes: applyMutations(msg, muts), fdCount: fds < 0 ? t.fdCount : fds };
  });

const randomBytes = fc
  .tuple(
    fc.oneof(
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 15 }) },
      { weight: 3, arbitrary: fc.uint8Array({ minLength: 16, maxLength: 64 }) },
    ),
    fc.boolean(),
    fresh,
    fc.integer({ min: 0, max: 3 }),
  )
  .map(([bytes, consistentSize, fr, fds]): FuzzCase => {
    const b = bytes.slice();
    if (consistentSize && b.byteLength >= HEADER_BYTES)
      new DataView(b.buffer).setUint32(4, b.byteLength, true);
    return { fresh: fr, bytes: b, fdCount: fds };
  });

/** The input distribution: mostly (mutated) valid messages, a quarter pure random bytes. */
export const fuzzCases: fc.Arbitrary<FuzzCase> = fc.oneof(
  { weight: 3, arbitrary: fromTemplate },
  { weight: 1, arbitrary: randomBytes },
);

// ---------------------------------------------------------------- target

/** The valid command sent after every input (DEVICE_GET_INFO, id 0xbeef). */
const PROBE = encodeMessage(
  { id: 0xbeef, command: Command.DEVICE_GET_INFO, flags: 0 },
  encodeDeviceInfoRequest(),
);
const VERSION_0_2 = encodeMessage(
  { id: 0xfffe, command: Command.VERSION, flags: 0 },
  encodeVersion({ major: 0, minor: 2 }),
);

interface Received {
  header: MessageHeader;
  payload: Uint8Array;
}

/**
 * A property over `fuzzCases` that runs each input on `holder.target` and replaces the target after
 * a failure, so fast-check's shrinking replays candidates on a clean server rather than on the state
 * the failure left behind.
 */
export function serverFuzzProperty(holder: { target: ServerFuzzTarget }): fc.IProperty<[FuzzCase]> {
  return fc.property(fuzzCases, (c) => {
    try {
      holder.target.run(c);
    } catch (e) {
      holder.target = new ServerFuzzTarget();
      throw e;
    }
  });
}

/** One server + fake backend + fd table; `run` checks the properties for one input. */
export class ServerFuzzTarget {
  readonly fds = new FakeFdTable();
  readonly bar0Fd = this.fds.open();
  readonly backend = new FakeBackend({ closeFd: (fd) => this.fds.close(fd), bar0MmapFd: this.bar0Fd });
  readonly threw: VfioUserEvent[] = [];
  /** How often each log event was seen (coverage indicator for the long run). */
  readonly events = new Map<string, number>();
  readonly stats = { cases: 0, replies: 0, errorReplies: 0, closes: 0, reconnects: 0 };
  readonly server = new VfioUserServer({
    backend: this.backend,
    closeFd: (fd) => this.fds.close(fd),
    maxDataXferBytes: FUZZ_MAX_DATA_XFER_BYTES,
    maxMessageBytes: FUZZ_MAX_MESSAGE_BYTES,
    maxDmaMaps: FUZZ_MAX_DMA_MAPS,
    writeMultiple: true,
    log: (e) => {
      if (e.name === "backend-threw") this.threw.push(e);
      this.events.set(e.name, (this.events.get(e.name) ?? 0) + 1);
    },
  });
  #client!: MessageTransport;
  #received: Received[] = [];
  #problems: string[] = [];
  #negotiated = false;

  constructor() {
    this.#connect(true);
  }

  #connect(negotiate: boolean): void {
    if (this.#client?.isOpen) this.server.disconnect(); // synchronous: detach runs now
    const [serverEnd, clientEnd] = createMemoryTransportPair({
      synchronous: true,
      dupFd: (fd) => this.fds.dup(fd),
      discardFd: (fd) => this.fds.close(fd),
    });
    assert.ok(this.server.attach(serverEnd), "server refused a new client after the old one left");
    this.#client = clientEnd;
    this.#received = [];
    // Runs inside the server's send (synchronous transport), so it records problems instead of
    // throwing: the server would catch an exception from its transport.
    clientEnd.onMessage((m) => {
      for (const fd of m.fds) this.fds.close(fd); // the raw client keeps nothing
      const h = decodeHeader(m.bytes);
      if (isDecodeError(h)) this.#problems.push("server sent fewer than 16 bytes");
      else if (h.sizeBytes !== m.bytes.byteLength) this.#problems.push("server sent a wrong size");
      else this.#received.push({ header: h, payload: m.bytes.subarray(HEADER_BYTES) });
    });
    this.#negotiated = false;
    if (negotiate) {
      this.#client.send(VERSION_0_2, []);
      assert.equal(this.#received.length, 1);
      assert.equal(this.#received[0]!.header.flags, MessageType.REPLY);
      this.#negotiated = true;
      this.#received = [];
    }
    this.stats.reconnects++;
  }

  run(c: FuzzCase): void {
    this.stats.cases++;
    if (c.fresh !== undefined || !this.#client.isOpen) this.#connect(c.fresh?.negotiated ?? true);
    this.#received = [];
    const sent = Array.from({ length: c.fdCount }, () => this.fds.open());
    this.#client.send(c.bytes, sent);
    for (const fd of sent) this.fds.close(fd); // the sender keeps no copy; the receiver got duplicates
    if (this.#problems.length > 0) assert.fail(this.#problems.join("; "));
    this.#checkReplies(c.bytes, this.#received);
    if (this.server.negotiated) this.#negotiated = true;
    if (this.threw.length > 0) assert.fail(`backend-threw: ${this.threw.map((e) => e.detail).join("; ")}`);
    this.#checkFds();
    this.#probe();
    this.#checkFds();
  }

  #checkReplies(bytes: Uint8Array, replies: Received[]): void {
    const h = bytes.byteLength >= HEADER_BYTES ? decodeHeader(bytes) : undefined;
    const header = h === undefined || isDecodeError(h) ? undefined : h;
    const closed = !this.#client.isOpen;
    if (closed) this.stats.closes++;
    const framingBad =
      header === undefined ||
      header.sizeBytes < HEADER_BYTES ||
      (header.sizeBytes <= FUZZ_MAX_MESSAGE_BYTES && header.sizeBytes !== bytes.byteLength);
    if (framingBad) {
      assert.ok(closed, "untrusted framing must close the connection");
      assert.equal(replies.length, 0);
      return;
    }
    const type = header.flags & HeaderFlag.TYPE_MASK;
    const expectReply = type !== MessageType.REPLY && (header.flags & HeaderFlag.NO_REPLY) === 0;
    assert.equal(
      replies.length,
      expectReply ? 1 : 0,
      `replies to command ${header.command} flags 0x${header.flags.toString(16)}`,
    );
    const r = replies[0];
    if (r !== undefined) {
      this.stats.replies++;
      assert.equal(r.header.id, header.id);
      assert.equal(r.header.command, header.command);
      assert.equal(r.header.flags & HeaderFlag.TYPE_MASK, MessageType.REPLY);
      if ((r.header.flags & HeaderFlag.ERROR) !== 0) {
        this.stats.errorReplies++;
        assert.equal(r.payload.byteLength, 0, "an error reply is the header alone");
        assert.ok(r.header.errno > 0 && r.header.errno < 200, `errno ${r.header.errno}`);
      }
    }
    if (closed) {
      // Only a VERSION with a major we do not speak closes a well-framed connection.
      assert.ok(
        !this.#negotiated && header.command === Command.VERSION,
        `closed after command ${header.command}`,
      );
      if (r !== undefined) assert.equal(r.header.errno, Errno.ENOTSUP);
    }
  }

  #checkFds(): void {
    if (this.fds.errors.length > 0) assert.fail(`fd misuse: ${this.fds.errors.join("; ")}`);
    const held = this.backend.heldFds();
    let ok = this.fds.openCount === held.length + 1 && this.fds.isOpen(this.bar0Fd);
    for (const fd of held) ok &&= this.fds.isOpen(fd);
    if (!ok)
      assert.deepEqual(
        this.fds.openFds(),
        [this.bar0Fd, ...held].sort((a, b) => a - b),
        "fd leak",
      );
  }

  #probe(): void {
    if (!this.#client.isOpen) this.#connect(true);
    const before = this.#received.length;
    this.#client.send(PROBE, []);
    if (this.#problems.length > 0) assert.fail(this.#problems.join("; "));
    const r = this.#received.slice(before);
    assert.equal(r.length, 1, "the probe was not answered");
    const p = r[0]!;
    assert.equal(p.header.id, 0xbeef);
    if (this.#negotiated) {
      assert.equal(p.header.flags, MessageType.REPLY);
      assert.equal(new DataView(p.payload.buffer, p.payload.byteOffset).getUint32(8, true), 9);
    } else {
      assert.equal(p.header.errno, Errno.EINVAL);
    }
  }

  /** Disconnects; afterwards only the backend's BAR fd may be open. */
  finish(): void {
    this.server.disconnect();
    assert.deepEqual(this.fds.openFds(), [this.bar0Fd]);
    assert.deepEqual(this.fds.errors, []);
  }
}
