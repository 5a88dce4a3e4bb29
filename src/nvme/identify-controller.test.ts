import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type ByteField, checkStructFields, structArbitrary } from "./codec-test-helpers.ts";
import {
  decodeIdentifyController,
  encodeIdentifyController,
  entrySizes,
  IDENTIFY_CONTROLLER_BYTES,
  type IdentifyController,
  makeIdentifyController,
  makePowerStateDescriptor,
  OACS_DBBUF,
  OACS_HMLMS,
  OACS_NMS,
  OACS_VMS,
  ONCS_COMPARE,
  ONCS_DATASET_MANAGEMENT,
  ONCS_WRITE_UNCORRECTABLE,
  ONCS_WRITE_ZEROES,
  TRATTR_MRTLL,
  TRATTR_THMCS,
  TRATTR_TUDCS,
} from "./identify-controller.ts";

// NVMe Base 2.1 Figure "Identify Controller Data Structure" (+ TP4159 bytes 570–587).
const FIELDS: readonly ByteField[] = [
  ["vid", 0, "u16"],
  ["ssvid", 2, "u16"],
  ["sn", 4, { ascii: 20 }],
  ["mn", 24, { ascii: 40 }],
  ["fr", 64, { ascii: 8 }],
  ["rab", 72, "u8"],
  ["ieee", 73, "u24"],
  ["cmic", 76, "u8"],
  ["mdts", 77, "u8"],
  ["cntlid", 78, "u16"],
  ["ver", 80, "u32"],
  ["rtd3r", 84, "u32"],
  ["rtd3e", 88, "u32"],
  ["oaes", 92, "u32"],
  ["ctratt", 96, "u32"],
  ["rrls", 100, "u16"],
  ["bpcap", 102, "u8"],
  ["nssl", 104, "u32"],
  ["plsi", 110, "u8"],
  ["cntrltype", 111, "u8"],
  ["fguid", 112, { bytes: 16 }],
  ["crdt1", 128, "u16"],
  ["crdt2", 130, "u16"],
  ["crdt3", 132, "u16"],
  ["crcap", 134, "u8"],
  ["nvmsr", 253, "u8"],
  ["vwci", 254, "u8"],
  ["mec", 255, "u8"],
  ["oacs", 256, "u16"],
  ["acl", 258, "u8"],
  ["aerl", 259, "u8"],
  ["frmw", 260, "u8"],
  ["lpa", 261, "u8"],
  ["elpe", 262, "u8"],
  ["npss", 263, "u8"],
  ["avscc", 264, "u8"],
  ["apsta", 265, "u8"],
  ["wctemp", 266, "u16"],
  ["cctemp", 268, "u16"],
  ["mtfa", 270, "u16"],
  ["hmpre", 272, "u32"],
  ["hmmin", 276, "u32"],
  ["tnvmcap", 280, "u128"],
  ["unvmcap", 296, "u128"],
  ["rpmbs", 312, "u32"],
  ["edstt", 316, "u16"],
  ["dsto", 318, "u8"],
  ["fwug", 319, "u8"],
  ["kas", 320, "u16"],
  ["hctma", 322, "u16"],
  ["mntmt", 324, "u16"],
  ["mxtmt", 326, "u16"],
  ["sanicap", 328, "u32"],
  ["hmminds", 332, "u32"],
  ["hmmaxd", 336, "u16"],
  ["nsetidmax", 338, "u16"],
  ["endgidmax", 340, "u16"],
  ["anatt", 342, "u8"],
  ["anacap", 343, "u8"],
  ["anagrpmax", 344, "u32"],
  ["nanagrpid", 348, "u32"],
  ["pels", 352, "u32"],
  ["domainid", 356, "u16"],
  ["kpioc", 358, "u8"],
  ["mptfawr", 360, "u16"],
  ["megcap", 368, "u128"],
  ["tmpthha", 384, "u8"],
  ["cqt", 386, "u16"],
  ["sqes", 512, "u8"],
  ["cqes", 513, "u8"],
  ["maxcmd", 514, "u16"],
  ["nn", 516, "u32"],
  ["oncs", 520, "u16"],
  ["fuses", 522, "u16"],
  ["fna", 524, "u8"],
  ["vwc", 525, "u8"],
  ["awun", 526, "u16"],
  ["awupf", 528, "u16"],
  ["nvscc", 530, "u8"],
  ["nwpc", 531, "u8"],
  ["acwu", 532, "u16"],
  ["ocfs", 534, "u16"],
  ["sgls", 536, "u32"],
  ["mnan", 540, "u32"],
  ["maxdna", 544, "u128"],
  ["maxcna", 560, "u32"],
  ["oaqd", 564, "u32"],
  ["rhiri", 568, "u8"],
  ["hirt", 569, "u8"],
  ["cmmrtd", 570, "u16"],
  ["nmmrtd", 572, "u16"],
  ["minmrtg", 574, "u8"],
  ["maxmrtg", 575, "u8"],
  ["trattr", 576, "u8"],
  ["mcudmq", 578, "u16"],
  ["mnsudmq", 580, "u16"],
  ["mcmr", 582, "u16"],
  ["nmcmr", 584, "u16"],
  ["mcdqpc", 586, "u16"],
  ["subnqn", 768, { asciiz: 256 }],
  ["ioccsz", 1792, "u32"],
  ["iorcsz", 1796, "u32"],
  ["icdoff", 1800, "u16"],
  ["fcatt", 1802, "u8"],
  ["msdbd", 1803, "u8"],
  ["ofcs", 1804, "u16"],
  ["dctype", 1806, "u8"],
  ["vs", 3072, { bytes: 1024 }],
];

test("Identify Controller is 4096 bytes and every field sits at its spec offset", () => {
  assert.equal(IDENTIFY_CONTROLLER_BYTES, 4096);
  checkStructFields({
    size: 4096,
    make: () => makeIdentifyController(),
    encode: (v) => encodeIdentifyController(v),
    decode: decodeIdentifyController,
    fields: FIELDS,
    except: ["psd"],
  });
});

test("power state descriptors: 32 of 32 bytes from byte 2048, sub-fields in place", () => {
  const zero = makeIdentifyController();
  assert.equal(zero.psd.length, 32);
  const psd1 = makePowerStateDescriptor({
    mp: 0x1234,
    mxps: 1,
    nops: 1,
    enlat: 0x11223344,
    exlat: 0x55667788,
    rrt: 0x1f,
    rrl: 0x1e,
    rwt: 0x1d,
    rwl: 0x1c,
    idlp: 0xabcd,
    ips: 3,
    actp: 0x4321,
    apw: 7,
    aps: 2,
  });
  const psd = [...zero.psd];
  psd[1] = psd1;
  const b = encodeIdentifyController({ ...zero, psd });
  const at = 2048 + 32;
  const expected = encodeIdentifyController(zero);
  expected.set([0x34, 0x12, 0, 0x03, 0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55], at);
  expected.set([0x1f, 0x1e, 0x1d, 0x1c, 0xcd, 0xab, 0xc0, 0, 0x21, 0x43, 0x87], at + 12);
  assert.deepEqual(b, expected);
  assert.deepEqual(decodeIdentifyController(b).psd[1], psd1);
  // The last descriptor ends where the vendor-specific area begins.
  const last = [...zero.psd];
  last[31] = makePowerStateDescriptor({ mp: 0xffff });
  const b2 = encodeIdentifyController({ ...zero, psd: last });
  assert.equal(b2[2048 + 31 * 32], 0xff);
  assert.equal(b2[2048 + 31 * 32 + 1], 0xff);
});

test("Intel LM profile flag is vs[0] = byte 3072", () => {
  const vs = new Uint8Array(1024);
  vs[0] = 1;
  const b = encodeIdentifyController(makeIdentifyController({ vs }));
  const expected = encodeIdentifyController(makeIdentifyController());
  expected[3072] = 1;
  assert.deepEqual(b, expected);
});

test("strings are space padded (SN/MN/FR) and NUL padded (SUBNQN)", () => {
  const b = encodeIdentifyController(
    makeIdentifyController({ sn: "SN1", mn: "nvmig", fr: "1.0", subnqn: "nqn.2014-08.org.nvmexpress:x" }),
  );
  assert.deepEqual([...b.subarray(4, 8)], [0x53, 0x4e, 0x31, 0x20]);
  assert.ok(b.subarray(7, 24).every((c) => c === 0x20));
  assert.ok(b.subarray(29, 64).every((c) => c === 0x20));
  assert.ok(b.subarray(67, 72).every((c) => c === 0x20));
  assert.ok(b.subarray(768 + 28, 1024).every((c) => c === 0));
  const d = decodeIdentifyController(b);
  assert.equal(d.sn, "SN1");
  assert.equal(d.mn, "nvmig");
  assert.equal(d.subnqn, "nqn.2014-08.org.nvmexpress:x");
  assert.throws(() => encodeIdentifyController(makeIdentifyController({ sn: "x".repeat(21) })), RangeError);
  assert.throws(() => encodeIdentifyController(makeIdentifyController({ mn: "bad\u00e9" })), RangeError);
});

test("encode into a dirty buffer zeroes reserved bytes; a short input decodes as zero-filled", () => {
  const dst = new Uint8Array(4096).fill(0xee);
  encodeIdentifyController(makeIdentifyController({ vid: 0x1b36 }), dst);
  assert.equal(dst[0], 0x36);
  assert.ok(
    dst.subarray(2).every((c) => c === 0x20 || c === 0),
    "only padding and zeros remain",
  );
  assert.equal(dst[103], 0); // reserved
  assert.equal(dst[577], 0); // reserved between TRATTR and MCUDMQ
  assert.throws(() => encodeIdentifyController(makeIdentifyController(), new Uint8Array(100)), RangeError);
  assert.equal(decodeIdentifyController(new Uint8Array([0x86, 0x80])).vid, 0x8086);
});

test("OACS / ONCS / TRATTR bit constants", () => {
  assert.equal(OACS_NMS, 1 << 3);
  assert.equal(OACS_VMS, 1 << 7);
  assert.equal(OACS_DBBUF, 1 << 8);
  assert.equal(OACS_HMLMS, 1 << 11);
  assert.equal(ONCS_COMPARE, 1);
  assert.equal(ONCS_WRITE_UNCORRECTABLE, 2);
  assert.equal(ONCS_DATASET_MANAGEMENT, 4);
  assert.equal(ONCS_WRITE_ZEROES, 8);
  assert.deepEqual([TRATTR_THMCS, TRATTR_TUDCS, TRATTR_MRTLL], [1, 2, 4]);
  assert.equal(entrySizes(6, 6), 0x66);
  assert.equal(entrySizes(4, 4), 0x44);
});

test("Identify Controller round-trips (property)", () => {
  fc.assert(
    fc.property(structArbitrary(FIELDS), (r) => {
      const v = { ...makeIdentifyController(), ...r } as IdentifyController;
      assert.deepEqual(decodeIdentifyController(encodeIdentifyController(v)), v);
    }),
    { numRuns: 30 },
  );
});
