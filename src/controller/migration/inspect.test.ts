import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  type ControllerState,
  decodeControllerState,
  decodeIocqa,
  decodeIosqa,
  encodeControllerState,
} from "../../nvme/controller-state.ts";
import { TestHost } from "../test-support.ts";
import { captureControllerState } from "./controller-state.ts";
import { type ControllerStateInspection, inspectControllerState } from "./inspect.ts";

async function suspendedControllerWithQueues(): Promise<TestHost> {
  const h = new TestHost();
  h.enable();
  await h.createIoQueuePair(1, 16, 1);
  await h.createIoQueuePair(2, 32, 2);
  h.controller.suspended = true;
  // Submitted while suspended: not fetched, so it shows as one unfetched entry of SQ 1.
  h.submit(1, { opc: 0x02, nsid: 1, prp1: h.alloc(4096), cdw10: 0, cdw12: 0 });
  h.pass();
  return h;
}

function inspected(bytes: Uint8Array): ControllerStateInspection {
  const r = inspectControllerState(bytes);
  if ("error" in r) assert.fail(r.error);
  return r;
}

function decoded(bytes: Uint8Array): ControllerState {
  const d = decodeControllerState(bytes);
  if (!d.ok) assert.fail(d.detail);
  return d.value;
}

function reencode(bytes: Uint8Array, change: (s: ControllerState) => ControllerState): Uint8Array {
  return encodeControllerState(change(decoded(bytes)));
}

test("a captured state: header, every queue entry with named fields and decoded attributes, valid vendor section", async () => {
  const h = await suspendedControllerWithQueues();
  const blob = captureControllerState(h.controller);
  const r = inspected(blob);
  const s = decoded(blob);

  assert.equal(r.kind, "tp4159-controller-state");
  assert.equal(r.bytes, blob.byteLength);
  assert.equal(r.header.ver, 0);
  assert.deepEqual(r.header.csattr, { raw: "0x01", suspended: true });
  assert.equal(48 + r.header.nvmecss.bytes + r.header.vss.bytes, blob.byteLength);
  assert.equal(r.header.nvmecss.bytes, 8 + 24 * 4);

  const nvme = r.nvmeControllerState;
  assert.ok(nvme !== null);
  assert.equal(nvme.niosq, 2);
  assert.equal(nvme.niocq, 2);
  const sq1 = nvme.iosq.find((q) => q.iosqqid === 1);
  assert.ok(sq1 !== undefined);
  assert.equal(sq1.iosqcqid, 1);
  assert.equal(sq1.iosqqsize, 15);
  assert.equal(sq1.entries, 16);
  assert.equal(sq1.iosqhp, 0);
  assert.equal(sq1.iosqtp, 1);
  assert.equal(sq1.unfetched, 1);
  assert.deepEqual(sq1.iosqa, { raw: "0x0001", pc: true, qprio: 0, qprioName: "Urgent" });
  assert.equal(sq1.iosqprp1, `0x${s.nvme!.sqs[0]!.iosqprp1.toString(16).padStart(16, "0")}`);
  const cq2 = nvme.iocq.find((q) => q.iocqqid === 2);
  assert.ok(cq2 !== undefined);
  assert.equal(cq2.entries, 32);
  assert.deepEqual(cq2.iocqa, { raw: "0x00020003", pc: true, ien: true, s0pt: 0, iv: 2 });

  assert.ok(r.vendor?.valid);
  assert.equal(r.vendor.format, "nvmig-controller-state");
  assert.equal(r.vendor.version, 1);
  const json = r.vendor.json as { identity: { cntlid: number; serial: string } };
  assert.equal(json.identity.cntlid, h.controller.cntlid);
  assert.equal(json.identity.serial, h.subsystem.identity.serial);
  assert.deepEqual(r.warnings, []);
  // JSON-safe: survives a JSON round trip unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});

test("a state captured while running is inspected, with a warning that a restore refuses it", async () => {
  const h = new TestHost();
  h.enable();
  await h.createIoQueuePair(1, 8, 1);
  const r = inspected(captureControllerState(h.controller));
  assert.equal(r.header.csattr.suspended, false);
  assert.ok(r.warnings.some((w) => w.includes("not captured from a suspended controller")));
});

test("vendor section that violates the schema: shown as JSON with the reason", async () => {
  const h = await suspendedControllerWithQueues();
  const blob = reencode(captureControllerState(h.controller), (s) => {
    const v = JSON.parse(new TextDecoder().decode(s.vendor)) as Record<string, unknown>;
    v.version = 99;
    const text = new TextEncoder().encode(JSON.stringify(v));
    const padded = new Uint8Array(Math.ceil(text.byteLength / 4) * 4).fill(0x20);
    padded.set(text);
    return { ...s, vendor: padded };
  });
  const r = inspected(blob);
  assert.ok(r.vendor !== null && !r.vendor.valid);
  assert.match(r.vendor.reason, /version/);
  assert.equal((r.vendor.json as { version: number }).version, 99);
  assert.equal(r.vendor.previewHex, undefined);
  assert.ok(r.warnings.some((w) => w.startsWith("vendor section is not a valid")));
});

test("vendor section that is not JSON: reason and a hex preview", async () => {
  const h = await suspendedControllerWithQueues();
  const foreign = Uint8Array.from({ length: 200 }, (_, i) => (i * 7 + 0x80) & 0xff);
  const r = inspected(reencode(captureControllerState(h.controller), (s) => ({ ...s, vendor: foreign })));
  assert.ok(r.vendor !== null && !r.vendor.valid);
  assert.match(r.vendor.reason, /not UTF-8 JSON/);
  assert.equal(r.vendor.previewHex, Buffer.from(foreign.subarray(0, 64)).toString("hex"));
  assert.equal(r.vendor.bytes, 200);
});

test("no NVMe state and no vendor section: nulls and warnings; other versions and reserved bytes are flagged", () => {
  const blob = encodeControllerState({ ver: 3, csattr: 0x81, nvme: undefined, vendor: new Uint8Array(0) });
  blob[5] = 1; // reserved header byte
  const r = inspected(blob);
  assert.equal(r.nvmeControllerState, null);
  assert.equal(r.vendor, null);
  assert.equal(r.header.ver, 3);
  assert.deepEqual(r.header.csattr, { raw: "0x81", suspended: true });
  for (const needle of ["header VER 3", "CSATTR reserved", "reserved bytes", "NVMECSS 0", "VSS 0"])
    assert.ok(
      r.warnings.some((w) => w.includes(needle)),
      `${needle} in ${r.warnings.join("; ")}`,
    );
});

test("repeated queue ids are flagged", () => {
  const sq = { iosqprp1: 0, iosqqsize: 1, iosqqid: 1, iosqcqid: 1, iosqa: 1, iosqhp: 0, iosqtp: 0 };
  const cq = { iocqprp1: 0, iocqqsize: 1, iocqqid: 1, iocqhp: 0, iocqtp: 0, iocqa: 1 };
  const r = inspected(
    encodeControllerState({
      ver: 0,
      csattr: 1,
      nvme: { ver: 0, sqs: [sq, sq], cqs: [cq, cq] },
      vendor: new Uint8Array(0),
    }),
  );
  assert.ok(r.warnings.includes("I/O SQ 1 appears more than once"));
  assert.ok(r.warnings.includes("I/O CQ 1 appears more than once"));
});

test("truncated, extended and foreign bytes are an error value naming the problem", async () => {
  const h = await suspendedControllerWithQueues();
  const blob = captureControllerState(h.controller);
  const short = inspectControllerState(blob.subarray(0, blob.byteLength - 4));
  assert.ok("error" in short);
  assert.match(short.error, /truncated/);
  const long = inspectControllerState(Uint8Array.from([...blob, 0, 0, 0, 0]));
  assert.ok("error" in long);
  assert.match(long.error, /size-mismatch/);
  const tiny = inspectControllerState(new Uint8Array(10));
  assert.ok("error" in tiny);
  assert.match(tiny.error, /header needs 48/);
  // NVMECSS 2 dwords (the 8 vendor bytes become the NVMe state, VSS 0), whose NIOSQ 1 needs 32 bytes.
  const bad = encodeControllerState({ ver: 0, csattr: 1, nvme: undefined, vendor: new Uint8Array(8) });
  bad[16] = 2;
  bad[32] = 0;
  bad[48 + 2] = 1; // NIOSQ 1
  const nvmeBad = inspectControllerState(bad);
  assert.ok("error" in nvmeBad);
  assert.match(nvmeBad.error, /nvme-state/);
});

test("property: any bytes give an inspection or an error, never an exception", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const r = inspectControllerState(bytes);
      assert.ok("error" in r || r.kind === "tp4159-controller-state");
    }),
    { numRuns: 300 },
  );
});

const arbSq = fc.record({
  iosqprp1: fc.nat({ max: 2 ** 40 }),
  iosqqsize: fc.integer({ min: 1, max: 0xffff }),
  iosqqid: fc.integer({ min: 1, max: 0xffff }),
  iosqcqid: fc.integer({ min: 1, max: 0xffff }),
  iosqa: fc.integer({ min: 0, max: 7 }),
  iosqhp: fc.nat({ max: 0xffff }),
  iosqtp: fc.nat({ max: 0xffff }),
});
const arbCq = fc.record({
  iocqprp1: fc.nat({ max: 2 ** 40 }),
  iocqqsize: fc.integer({ min: 1, max: 0xffff }),
  iocqqid: fc.integer({ min: 1, max: 0xffff }),
  iocqhp: fc.nat({ max: 0xffff }),
  iocqtp: fc.nat({ max: 0xffff }),
  iocqa: fc.nat({ max: 0xffffffff }).map((x) => (x & 0xffff0007) >>> 0),
});

test("property: every queue entry's fields and attribute bits are reported as encoded", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(arbSq, { maxLength: 5, selector: (q) => q.iosqqid }),
      fc.uniqueArray(arbCq, { maxLength: 5, selector: (q) => q.iocqqid }),
      (sqs, cqs) => {
        const blob = encodeControllerState({
          ver: 0,
          csattr: 1,
          nvme: { ver: 0, sqs, cqs },
          vendor: new Uint8Array(0),
        });
        const r = inspected(blob);
        const n = r.nvmeControllerState!;
        assert.equal(n.iosq.length, sqs.length);
        sqs.forEach((q, i) => {
          const got = n.iosq[i]!;
          const a = decodeIosqa(q.iosqa);
          assert.equal(got.iosqqid, q.iosqqid);
          assert.equal(got.iosqcqid, q.iosqcqid);
          assert.equal(Number(got.iosqprp1), q.iosqprp1);
          assert.equal(got.entries, q.iosqqsize + 1);
          assert.equal(got.iosqa.pc, a.pc);
          assert.equal(got.iosqa.qprio, a.qprio);
          assert.equal(got.unfetched, (((q.iosqtp - q.iosqhp) % got.entries) + got.entries) % got.entries);
          assert.equal(
            r.warnings.some((w) => w.startsWith(`I/O SQ ${q.iosqqid} head`)),
            q.iosqhp > q.iosqqsize || q.iosqtp > q.iosqqsize,
          );
          assert.equal(
            r.warnings.some((w) => w.startsWith(`I/O SQ ${q.iosqqid} names CQ`)),
            !cqs.some((c) => c.iocqqid === q.iosqcqid),
          );
        });
        cqs.forEach((q, i) => {
          const got = n.iocq[i]!;
          const a = decodeIocqa(q.iocqa);
          assert.equal(got.iocqqid, q.iocqqid);
          assert.equal(Number(got.iocqprp1), q.iocqprp1);
          assert.equal(Number(got.iocqa.raw), q.iocqa);
          assert.deepEqual(
            { pc: got.iocqa.pc, ien: got.iocqa.ien, s0pt: got.iocqa.s0pt, iv: got.iocqa.iv },
            a,
          );
          assert.ok(got.pending >= 0 && got.pending < got.entries);
          assert.equal(
            r.warnings.some((w) => w.startsWith(`I/O CQ ${q.iocqqid} `)),
            q.iocqhp > q.iocqqsize || q.iocqtp > q.iocqqsize,
          );
        });
      },
    ),
    { numRuns: 200 },
  );
});
