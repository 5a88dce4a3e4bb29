import assert from "node:assert/strict";
import { test } from "node:test";
import { Command, Errno, HEADER_BYTES, HeaderFlag } from "./constants.ts";
import {
  checkHeader,
  decodeHeader,
  encodeCommand,
  encodeErrorReply,
  encodeMessage,
  encodeReply,
  hasError,
  hasNoReply,
  isReply,
  payloadOf,
} from "./header.ts";
import { isDecodeError } from "./wire.ts";

test("header is 16 bytes, little-endian, fields at spec offsets", () => {
  const m = encodeMessage(
    { id: 0x1234, command: Command.REGION_WRITE, flags: HeaderFlag.NO_REPLY, errno: 0x0a0b0c0d },
    Uint8Array.of(0xaa, 0xbb),
  );
  assert.equal(HEADER_BYTES, 16);
  assert.deepEqual(
    [...m],
    [
      0x34, 0x12, 0x0a, 0x00, 0x12, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x0d, 0x0c, 0x0b, 0x0a, 0xaa,
      0xbb,
    ],
  );
  const h = decodeHeader(m);
  assert.ok(!isDecodeError(h));
  assert.deepEqual(h, { id: 0x1234, command: 10, sizeBytes: 18, flags: 0x10, errno: 0x0a0b0c0d });
  assert.deepEqual([...payloadOf(m)], [0xaa, 0xbb]);
});

test("decodeHeader refuses fewer than 16 bytes with EINVAL", () => {
  const r = decodeHeader(new Uint8Array(15));
  assert.ok(isDecodeError(r));
  assert.equal(r.errno, Errno.EINVAL);
  assert.equal(r.reason, "header-truncated");
});

test("command, reply and error reply set the type, NO_REPLY and ERROR bits", () => {
  const c = decodeHeader(encodeCommand(7, Command.DEVICE_RESET, undefined, true));
  assert.ok(!isDecodeError(c));
  assert.equal(c.flags, 0x10);
  assert.ok(hasNoReply(c.flags) && !isReply(c.flags));
  const r = decodeHeader(encodeReply(7, Command.DEVICE_RESET));
  assert.ok(!isDecodeError(r));
  assert.equal(r.flags, 0x1);
  const e = decodeHeader(encodeErrorReply(7, Command.DMA_MAP, Errno.EEXIST));
  assert.ok(!isDecodeError(e));
  assert.deepEqual(e, { id: 7, command: 2, sizeBytes: 16, flags: 0x21, errno: 17 });
  assert.ok(isReply(e.flags) && hasError(e.flags));
});

test("checkHeader: size < 16 is a framing problem, size over limit E2BIG, unknown type EINVAL", () => {
  const base = { id: 1, command: 1, flags: 0, errno: 0 };
  assert.deepEqual(checkHeader({ ...base, sizeBytes: 15 }, 4096), {
    kind: "size-below-header",
    framing: true,
    errno: Errno.EINVAL,
  });
  assert.deepEqual(checkHeader({ ...base, sizeBytes: 4097 }, 4096), {
    kind: "size-over-limit",
    framing: false,
    errno: Errno.E2BIG,
  });
  assert.deepEqual(checkHeader({ ...base, sizeBytes: 16, flags: 2 }, 4096), {
    kind: "unknown-type",
    framing: false,
    errno: Errno.EINVAL,
  });
  assert.equal(checkHeader({ ...base, sizeBytes: 4096, flags: 0x31 }, 4096), undefined);
});
