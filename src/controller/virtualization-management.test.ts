/**
 * Virtualization Management rules (NVMe Base 2.1 §8.2.6): resources are assigned only while a
 * secondary is offline; online needs ≥ 2 VQ and ≥ 1 VI and its VF enabled; assignments are bounded by
 * VQFRSM / the flexible pool; primary-only; a primary reset or disable takes secondaries offline.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../host/subsystem-host.ts";
import { decodeSecondaryControllerList } from "../nvme/secondary-controller-list.ts";
import { Status } from "../nvme/status.ts";
import { encodeVirtualizationManagement } from "../nvme/virtualization-management.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { TestHost } from "./test-support.ts";

async function setup(vfs = 2) {
  const host = new SubsystemHost({
    namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 512, lbaCount: 4096 }) }],
    secondaryCount: 2,
  });
  const pf = new TestHost({ subsystem: host.subsystem, controller: host.pf.controller });
  pf.enable();
  if (vfs > 0) {
    host.pf.configWrite(0x110, 2, vfs);
    host.pf.configWrite(0x108, 2, 1);
  }
  const vm = (act: number, rt: number, cntlid: number, nr: number) =>
    pf.admin({ opc: 0x1c, ...encodeVirtualizationManagement({ act, rt, cntlid, nr }) }).then((c) => c.status);
  return { host, pf, vm };
}

test("online needs resources; resources only while offline; bounds; unknown CNTLID", async () => {
  const { host, pf, vm } = await setup();
  assert.equal(await vm(9, 0, 1, 0), Status.InvalidSecondaryControllerState, "online without resources");
  assert.equal(await vm(8, 0, 1, 1), 0);
  assert.equal(await vm(8, 1, 1, 1), 0);
  assert.equal(await vm(9, 0, 1, 0), Status.InvalidSecondaryControllerState, "1 VQ is not enough");
  assert.equal(await vm(8, 0, 1, 2), 0);
  assert.equal(await vm(9, 0, 1, 0), 0, "online with 2 VQ + 1 VI");
  assert.equal(await vm(8, 0, 1, 3), Status.InvalidSecondaryControllerState, "assign while online");
  assert.equal(await vm(8, 0, 2, 1000), Status.InvalidNumberOfControllerResources, "over VQFRSM / pool");
  assert.equal(await vm(8, 2, 2, 1), Status.InvalidResourceIdentifier, "RT 2");
  assert.equal(await vm(8, 0, 7, 1), Status.InvalidControllerIdentifier, "not a secondary");
  assert.equal(
    await vm(1, 0, 5, 0),
    Status.InvalidControllerIdentifier,
    "flexible allocation for another controller",
  );
  assert.equal(await vm(3, 0, 1, 0), Status.InvalidField, "undefined action");
  const buf = pf.alloc(4096);
  assert.equal((await pf.admin({ opc: 0x06, prp1: buf, cdw10: 0x15 })).status, 0);
  const list = decodeSecondaryControllerList(pf.ram.subarray(buf, buf + 4096));
  assert.deepEqual(
    list.map((e) => [e.scid, e.vfn, e.scs & 1, e.nvq, e.nvi]),
    [
      [1, 1, 1, 2, 1],
      [2, 2, 0, 0, 0],
    ],
  );
  // A secondary's own admin queue does not take Virtualization Management.
  const vf = new TestHost({ subsystem: host.subsystem, controller: host.vfs.get(1)!.controller });
  vf.enable();
  assert.equal(
    (await vf.admin({ opc: 0x1c, ...encodeVirtualizationManagement({ act: 9, rt: 0, cntlid: 2, nr: 0 }) }))
      .status,
    Status.InvalidOpcode,
  );
});

test("online needs the VF enabled; a primary reset takes secondaries offline", async () => {
  const { host, pf, vm } = await setup(0);
  assert.equal(await vm(8, 0, 1, 2), 0);
  assert.equal(await vm(8, 1, 1, 1), 0);
  assert.equal(await vm(9, 0, 1, 0), Status.InvalidSecondaryControllerState, "VF not enabled");
  host.pf.configWrite(0x110, 2, 1);
  host.pf.configWrite(0x108, 2, 1);
  assert.equal(await vm(9, 0, 1, 0), 0);
  assert.equal(host.subsystem.secondary(1)!.online, true);
  // Disable the primary (CC.EN 1 → 0): the secondary goes offline, its controller reports CFS.
  pf.controller.write32(0x14, 0);
  assert.equal(host.subsystem.secondary(1)!.online, false);
  assert.equal(host.vfs.get(1)!.controller.read32(0x1c) & 2, 2, "CSTS.CFS on an offline secondary");
});
