import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "./constants.ts";
import {
  decodeVersion,
  encodeVersion,
  negotiateVersion,
  VERSION_FIXED_BYTES,
  withDefaults,
} from "./version.ts";
import { isDecodeError } from "./wire.ts";

const enc = new TextEncoder();
function versionPayload(major: number, minor: number, json?: string, nul = true): Uint8Array {
  const j = json === undefined ? new Uint8Array(0) : enc.encode(json);
  const out = new Uint8Array(4 + j.byteLength + (json !== undefined && nul ? 1 : 0));
  const v = new DataView(out.buffer);
  v.setUint16(0, major, true);
  v.setUint16(2, minor, true);
  out.set(j, 4);
  return out;
}

test("VERSION payload: major u16, minor u16, then NUL-terminated JSON", () => {
  const p = encodeVersion({
    major: 0,
    minor: 2,
    capabilities: { maxMsgFds: 8, maxDataXferSize: 1048576, migration: { pgsize: 4096 } },
  });
  assert.equal(VERSION_FIXED_BYTES, 4);
  assert.deepEqual([...p.subarray(0, 4)], [0, 0, 2, 0]);
  assert.equal(p[p.byteLength - 1], 0);
  const text = new TextDecoder().decode(p.subarray(4, p.byteLength - 1));
  assert.deepEqual(JSON.parse(text), {
    capabilities: { max_msg_fds: 8, max_data_xfer_size: 1048576, migration: { pgsize: 4096 } },
  });
  assert.deepEqual(encodeVersion({ major: 0, minor: 0 }).byteLength, 4);
});

test("decodes QEMU 11.1.3's exact VERSION proposal", () => {
  const qemu =
    '{"capabilities": {"pgsizes": 4096, "max_msg_fds": 16, "max_dma_maps": 65535, "max_data_xfer_size": 1048576, "migration": {"max_bitmap_size": 268435456, "pgsize": 4096}, "write_multiple": true}}';
  const v = decodeVersion(versionPayload(0, 0, qemu));
  assert.ok(!isDecodeError(v));
  assert.deepEqual(v, {
    major: 0,
    minor: 0,
    capabilities: {
      maxMsgFds: 16,
      maxDataXferSize: 1048576,
      maxDmaMaps: 65535,
      pgsizes: 4096,
      writeMultiple: true,
      migration: { pgsize: 4096, maxBitmapSize: 268435456 },
    },
  });
});

test("no JSON (SPDK), bare NUL, and JSON without NUL are accepted", () => {
  assert.deepEqual(decodeVersion(versionPayload(0, 1)), { major: 0, minor: 1 });
  assert.deepEqual(decodeVersion(Uint8Array.of(0, 0, 2, 0, 0)), { major: 0, minor: 2 });
  assert.deepEqual(decodeVersion(versionPayload(0, 2, "{}", false)), {
    major: 0,
    minor: 2,
    capabilities: {},
  });
});

test("bad VERSION payloads are EINVAL with a reason", () => {
  const cases: [Uint8Array, string][] = [
    [Uint8Array.of(0, 0, 2), "version-too-short"],
    [versionPayload(0, 0, "{not json"), "json-invalid"],
    [versionPayload(0, 0, "[1,2]"), "json-not-object"],
    [versionPayload(0, 0, "42"), "json-not-object"],
    [versionPayload(0, 0, "null"), "json-not-object"],
    [versionPayload(0, 0, '"caps"'), "json-not-object"],
    [versionPayload(0, 0, '{"capabilities": 3}'), "capabilities-not-object"],
    [versionPayload(0, 0, '{"capabilities": {"max_msg_fds": "8"}}'), "capability-max_msg_fds-invalid"],
    [versionPayload(0, 0, '{"capabilities": {"max_msg_fds": -1}}'), "capability-max_msg_fds-invalid"],
    [
      versionPayload(0, 0, '{"capabilities": {"max_data_xfer_size": 0}}'),
      "capability-max_data_xfer_size-invalid",
    ],
    [versionPayload(0, 0, '{"capabilities": {"write_multiple": 1}}'), "capability-write_multiple-invalid"],
    [versionPayload(0, 0, '{"capabilities": {"migration": []}}'), "capability-migration-invalid"],
    [Uint8Array.of(0, 0, 0, 0, 0xff, 0xfe, 0), "json-invalid"],
  ];
  for (const [p, reason] of cases) {
    const r = decodeVersion(p);
    assert.ok(isDecodeError(r), reason);
    assert.equal(r.errno, Errno.EINVAL);
    assert.equal(r.reason, reason);
  }
});

test("unknown capability keys are ignored", () => {
  const v = decodeVersion(
    versionPayload(0, 0, '{"capabilities": {"future": {"x": 1}, "max_msg_fds": 2}, "other": 1}'),
  );
  assert.deepEqual(v, { major: 0, minor: 0, capabilities: { maxMsgFds: 2 } });
});

test("defaults: max_msg_fds 1, max_data_xfer_size 1 MiB, max_dma_maps 65535, pgsizes 4096", () => {
  assert.deepEqual(withDefaults(undefined), {
    maxMsgFds: 1,
    maxDataXferSize: 1048576,
    maxDmaMaps: 65535,
    pgsizes: 4096,
    writeMultiple: false,
  });
});

test("negotiation: same major, minor = min(proposed, ours), write_multiple only if both", () => {
  const ours = { major: 0, minor: 2, capabilities: { maxMsgFds: 8, writeMultiple: true } };
  const a = negotiateVersion({ major: 0, minor: 0, capabilities: { writeMultiple: true } }, ours);
  assert.equal(a.kind, "accept");
  if (a.kind !== "accept") return;
  assert.deepEqual(a.reply, { major: 0, minor: 0, capabilities: { maxMsgFds: 8, writeMultiple: true } });
  assert.equal(a.writeMultiple, true);
  const b = negotiateVersion({ major: 0, minor: 7 }, ours);
  assert.ok(b.kind === "accept");
  if (b.kind !== "accept") return;
  assert.equal(b.reply.minor, 2);
  assert.equal(b.writeMultiple, false);
  assert.deepEqual(b.reply.capabilities, { maxMsgFds: 8 });
  assert.deepEqual(negotiateVersion({ major: 1, minor: 0 }, ours), {
    kind: "reject-major",
    proposedMajor: 1,
  });
});
