/**
 * Bad input to a restore is refused with a clear reason and changes nothing: truncated, corrupted,
 * foreign-version, wrong-identity state, queues outside the destination's guest memory; and
 * Get Controller State offsets / NUMD beyond the state → Invalid Field. The source can still resume.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../../host/subsystem-host.ts";
import { decodeControllerState, encodeControllerState } from "../../nvme/controller-state.ts";
import { encodeMigrationReceive } from "../../nvme/migration-commands.ts";
import { Status } from "../../nvme/status.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { TestHost } from "../test-support.ts";
import { captureControllerState, restoreControllerState } from "./controller-state.ts";
import { decodeVendorState, encodeVendorState } from "./vendor-state.ts";

async function suspendedSource() {
  const src = new TestHost();
  src.enable();
  await src.createIoQueuePair(1, 16, 1);
  src.controller.suspended = true;
  return src;
}

function freshDestination(ramBytes?: number, identity?: { serial: string }) {
  const store = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 1 << 16 });
  const d = new TestHost({
    ...(ramBytes !== undefined ? { ramBytes } : {}),
    subsystemOptions: { namespaces: [{ nsid: 1, store }], ...(identity !== undefined ? { identity } : {}) },
  });
  d.controller.suspended = true;
  return d;
}

function rewriteVendor(blob: Uint8Array, edit: (v: Record<string, unknown>) => void): Uint8Array {
  const d = decodeControllerState(blob);
  assert.ok(d.ok);
  const v = decodeVendorState(d.value.vendor);
  assert.ok(v.ok);
  const copy = structuredClone(v.value) as unknown as Record<string, unknown>;
  edit(copy);
  return encodeControllerState({ ...d.value, vendor: encodeVendorState(copy as never) });
}

test("restore refuses bad states and changes nothing", async () => {
  const src = await suspendedSource();
  const blob = captureControllerState(src.controller);
  const cases: [string, Uint8Array, () => TestHost, RegExp][] = [
    ["truncated", blob.subarray(0, blob.byteLength - 100), () => freshDestination(), /truncated/],
    [
      "corrupted vendor JSON",
      (() => {
        const b = blob.slice();
        b[blob.byteLength - 20] = 0x7b;
        b[blob.byteLength - 40] = 0x00;
        return b;
      })(),
      () => freshDestination(),
      /vendor/,
    ],
    [
      "foreign header version",
      (() => {
        const b = blob.slice();
        b[0] = 9;
        return b;
      })(),
      () => freshDestination(),
      /VER/,
    ],
    [
      "foreign vendor version",
      rewriteVendor(blob, (v) => {
        v.version = 99;
      }),
      () => freshDestination(),
      /version/,
    ],
    [
      "foreign vendor format",
      rewriteVendor(blob, (v) => {
        v.format = "other-device";
      }),
      () => freshDestination(),
      /format/,
    ],
    [
      "wrong identity",
      blob,
      () => freshDestination(undefined, { serial: "SOMEONE-ELSE" }),
      /identity mismatch/,
    ],
    ["queues outside guest memory", blob, () => freshDestination(1 << 20), /outside mapped guest memory/],
  ];
  for (const [name, bad, mk, why] of cases) {
    const d = mk();
    const before = { cc: d.controller.cc, queues: d.controller.ioQueueCounts() };
    const reason = restoreControllerState(d.controller, bad);
    assert.ok(reason !== undefined, `${name}: refused`);
    assert.match(reason, why, `${name}: ${reason}`);
    assert.deepEqual(
      { cc: d.controller.cc, queues: d.controller.ioQueueCounts() },
      before,
      `${name}: unchanged`,
    );
  }
  // The good state is accepted, and the source can still resume.
  assert.equal(restoreControllerState(freshDestination().controller, blob), undefined);
  src.controller.suspended = false;
  const buf = src.alloc(4096);
  assert.equal((await src.command(1, { opc: 0x02, nsid: 1, prp1: buf, cdw10: 0, cdw12: 0 })).status, 0);
});

test("Get Controller State: an offset beyond the state, or NUMD over MDTS → Invalid Field", async () => {
  const host = new SubsystemHost({
    namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 512, lbaCount: 4096 }) }],
    secondaryCount: 1,
  });
  const pf = new TestHost({ subsystem: host.subsystem, controller: host.pf.controller });
  pf.enable();
  host.pf.configWrite(0x110, 2, 1);
  host.pf.configWrite(0x108, 2, 1);
  for (const [act, rt, nr] of [
    [8, 0, 2],
    [8, 1, 1],
    [9, 0, 0],
  ] as const)
    assert.equal((await pf.admin({ opc: 0x1c, cdw10: act | (rt << 8) | (1 << 16), cdw11: nr })).status, 0);
  assert.equal((await pf.admin({ opc: 0x41, cdw10: 0, cdw11: 1 | (1 << 16) })).status, 0, "suspend");
  const out = pf.alloc(8192);
  const get = (offset: number, numd: number) =>
    pf.admin({
      opc: 0x42,
      prp1: out,
      prp2: out + 4096,
      ...encodeMigrationReceive({
        sel: 0,
        csvi: 1,
        cntlid: 1,
        csuuidi: 1,
        csuidxp: 0,
        offset,
        uidx: 0,
        numd,
      }),
    });
  assert.equal((await get(0, 1023)).status, 0);
  assert.equal((await get(1 << 20, 10)).status, Status.InvalidField, "offset beyond the state");
  assert.equal((await get(0, (1 << 20) / 4)).status, Status.InvalidField, "NUMD over MDTS");
  assert.equal((await get(2, 10)).status, Status.InvalidField, "offset not dword aligned");
  assert.equal((await pf.admin({ opc: 0x41, cdw10: 1, cdw11: 1 })).status, 0, "resume");
});
