/**
 * The guest driver keeps running across a TP4159 migration of its VF: the VM's driver and verified
 * workload run on VF1 of a source subsystem; the host side (a second `GuestNvmeDriver` on each PF,
 * with its own "host memory") brings VF1 online with Virtualization Management, then Suspends it,
 * reads its Controller State and Sets it into VF1 of a destination subsystem over shared storage, and
 * Resumes it. The VM's port is paused (vCPUs stopped) from just before the suspend until the
 * destination runs; the workload then continues and verifies: nothing lost, torn, duplicated or
 * missing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../host/subsystem-host.ts";
import { controllerStateBytes, decodeControllerStateHeader } from "../nvme/controller-state.ts";
import { VirtMgmtAction, VirtMgmtResourceType } from "../nvme/identifiers.ts";
import {
  encodeMigrationReceive,
  encodeMigrationSend,
  MigrationReceiveSel,
  MigrationSendSel,
  migrationReceiveNumd,
  migrationSendNumd,
  SequenceIndicator,
  SuspendType,
} from "../nvme/migration-commands.ts";
import { AdminOpcode } from "../nvme/opcodes.ts";
import { statusName } from "../nvme/status.ts";
import { encodeVirtualizationManagement } from "../nvme/virtualization-management.ts";
import type { BlockStore } from "../storage/block-store.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { createGuestMemory, type GuestMemory } from "./guest-memory.ts";
import { InProcessPort } from "./in-process-port.ts";
import { GuestNvmeDriver } from "./nvme-driver.ts";
import { Workload } from "./workload.ts";

const PAGE = 4096;
const PCI_EXT_CAP_ID_SRIOV = 0x10;
const SRIOV_CONTROL = 0x08;
const SRIOV_NUM_VFS = 0x10;

interface HostSide {
  host: SubsystemHost;
  mem: GuestMemory;
  pf: GuestNvmeDriver;
}

async function admin(
  pf: GuestNvmeDriver,
  fields: Parameters<GuestNvmeDriver["adminCommand"]>[0],
  what: string,
) {
  const r = await pf.adminCommand(fields);
  assert.equal(r.status, 0, `${what}: ${statusName(r.status)}`);
  return r;
}

/** A host: subsystem over `store`, its PF driven by a driver, VF1 enabled, resourced and online. */
async function makeHostSide(store: BlockStore): Promise<HostSide> {
  const host = new SubsystemHost({ namespaces: [{ nsid: 1, store }], secondaryCount: 2 });
  const mem = createGuestMemory(4 << 20);
  const port = new InProcessPort(host.pf, mem);
  const pf = new GuestNvmeDriver(port, mem, { ioQueues: 1, asyncEventRequests: 0 });
  await pf.init();
  // SR-IOV: find the extended capability, NumVFs = 1, VF Enable | VF MSE.
  let sriov = 0;
  for (let at = 0x100; at !== 0; ) {
    const header = await port.configRead(at, 4);
    if ((header & 0xffff) === PCI_EXT_CAP_ID_SRIOV) {
      sriov = at;
      break;
    }
    at = header >>> 20;
  }
  assert.ok(sriov !== 0, "the PF has an SR-IOV capability");
  port.configWrite(sriov + SRIOV_NUM_VFS, 2, 1);
  port.configWrite(sriov + SRIOV_CONTROL, 2, 1 | (1 << 3));
  assert.equal(host.vfs.size, 1);
  const vm = (act: number, rt: number, nr: number) => ({
    opc: AdminOpcode.VirtualizationManagement,
    ...encodeVirtualizationManagement({ act, rt, cntlid: 1, nr }),
  });
  await admin(
    pf,
    vm(VirtMgmtAction.SecondaryControllerAssign, VirtMgmtResourceType.VqResources, 5),
    "assign VQ",
  );
  await admin(
    pf,
    vm(VirtMgmtAction.SecondaryControllerAssign, VirtMgmtResourceType.ViResources, 5),
    "assign VI",
  );
  await admin(pf, vm(VirtMgmtAction.SecondaryControllerOnline, 0, 0), "online");
  return { host, mem, pf };
}

function suspend(cntlid: number) {
  return {
    opc: AdminOpcode.MigrationSend,
    ...encodeMigrationSend({
      sel: MigrationSendSel.Suspend,
      cntlid,
      stype: SuspendType.Suspend,
      dudmq: false,
      uidx: 0,
    }),
  };
}

function resume(cntlid: number) {
  return {
    opc: AdminOpcode.MigrationSend,
    ...encodeMigrationSend({ sel: MigrationSendSel.Resume, cntlid, uidx: 0 }),
  };
}

/** Get Controller State of `cntlid`, one page per command. */
async function getState(side: HostSide, cntlid: number): Promise<Uint8Array> {
  const page = side.mem.allocPages(1);
  const chunk = async (offset: number) => {
    await admin(
      side.pf,
      {
        opc: AdminOpcode.MigrationReceive,
        prp1: page,
        ...encodeMigrationReceive({
          sel: MigrationReceiveSel.GetControllerState,
          csvi: 1,
          cntlid,
          csuuidi: 1,
          csuidxp: 0,
          offset,
          uidx: 0,
          numd: migrationReceiveNumd(PAGE),
        }),
      },
      "Migration Receive",
    );
    return side.mem.view(page, PAGE).slice();
  };
  const first = await chunk(0);
  const size = controllerStateBytes(decodeControllerStateHeader(first));
  assert.ok(size.ok);
  const out = new Uint8Array(size.value);
  out.set(first.subarray(0, Math.min(PAGE, size.value)));
  for (let offset = PAGE; offset < size.value; offset += PAGE) {
    out.set((await chunk(offset)).subarray(0, Math.min(PAGE, size.value - offset)), offset);
  }
  side.mem.free(page);
  return out;
}

/** Set Controller State of `cntlid` from `state`, one page per command. */
async function setState(side: HostSide, cntlid: number, state: Uint8Array): Promise<void> {
  const page = side.mem.allocPages(1);
  for (let offset = 0; offset < state.byteLength; offset += PAGE) {
    const n = Math.min(PAGE, state.byteLength - offset);
    side.mem.write(page, state.subarray(offset, offset + n));
    const first = offset === 0;
    const last = offset + n >= state.byteLength;
    const seqind =
      first && last
        ? SequenceIndicator.Entire
        : first
          ? SequenceIndicator.First
          : last
            ? SequenceIndicator.Last
            : SequenceIndicator.NotFirstNotLast;
    await admin(
      side.pf,
      {
        opc: AdminOpcode.MigrationSend,
        prp1: page,
        ...encodeMigrationSend({
          sel: MigrationSendSel.SetControllerState,
          seqind,
          cntlid,
          csvi: 1,
          csuuidi: 1,
          offset,
          uidx: 0,
          numd: migrationSendNumd(n),
        }),
      },
      "Set Controller State",
    );
  }
  side.mem.free(page);
}

for (const completionMode of ["interrupt", "polling"] as const) {
  test(`the VM's driver and workload continue across a VF migration (${completionMode})`, async () => {
    const store = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 1 << 15 });
    const src = await makeHostSide(store);
    const dst = await makeHostSide(store);

    const vmMem = createGuestMemory(16 << 20);
    const vmPort = new InProcessPort(src.host.vfs.get(1)!, vmMem);
    const vm = new GuestNvmeDriver(vmPort, vmMem, { ioQueues: 2, ioQueueEntries: 64, completionMode });
    await vm.init();
    assert.equal(vm.ioQueueCount, 2);
    const w = new Workload(vm, vmMem, {
      pattern: "random",
      readPercent: 50,
      blockBytes: 4096,
      queueDepth: 16,
      queues: 2,
      lbaRange: [0, 4096],
      seed: 11,
      drainTimeoutMs: 5000,
    });
    const finished = w.start();
    await new Promise((r) => setTimeout(r, 40));
    const beforeMigration = w.completedOps;
    assert.ok(beforeMigration > 0);

    // vCPUs stop; the source VF is suspended (fetched commands complete into guest RAM) and saved.
    vmPort.pause();
    await admin(src.pf, suspend(1), "Suspend (source)");
    const state = await getState(src, 1);
    // Destination: guest RAM mapped into its VF1, state restored, resumed; vCPUs run there.
    await admin(dst.pf, suspend(1), "Suspend (destination)");
    vmPort.retarget(dst.host.vfs.get(1)!);
    await setState(dst, 1, state);
    await admin(dst.pf, resume(1), "Resume (destination)");
    vmPort.resume();

    await new Promise((r) => setTimeout(r, 40));
    assert.ok(w.completedOps > beforeMigration, "I/O continues on the destination");
    await w.stop();
    const stats = await finished;
    assert.equal(stats.errors, 0);
    const report = await w.verify();
    assert.equal(report.verified, true, JSON.stringify(report.failures));
    assert.equal(report.lostWrites, 0);
    assert.equal(report.badReads, 0);
    assert.equal(report.duplicateCompletions, 0);
    assert.equal(report.missingCompletions, 0);
    assert.ok(report.finalBlocksChecked > 0);
    assert.equal(vm.stats().ioTimeouts, 0);
    await vm.shutdown();
    await src.pf.shutdown();
    await dst.pf.shutdown();
  });
}
