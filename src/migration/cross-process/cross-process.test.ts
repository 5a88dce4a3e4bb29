/**
 * Migration across VMM processes, in band: two hosts (in this process) export VF1 each over vfio-user;
 * a source `nvmig vm` process runs the verified workload on host A's VF, a destination `nvmig vm
 * --incoming` process waits on host B's VF. The orchestrator (here) drives both VMMs' portals through
 * their vfio-user clients (DEVICE_FEATURE, MIG_DATA_READ / WRITE relayed over the control channels),
 * guest RAM goes from VMM to VMM over TCP on loopback, the guest's own state follows at switchover,
 * and the destination VMM then verifies the whole run: zero loss.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HostNode } from "../../host/host-node.ts";
import { createVfPortal, exportNvmeFunction, type FunctionExport } from "../../host/vfio-user-export.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { lastVmResult, spawnVmChild } from "../../vmm/fixtures/spawn-vm.ts";
import { VmControlClient } from "../../vmm/vm-control.ts";
import { migrate } from "../orchestrator.ts";
import { controlCall, remoteVmPair, vmmDeviceEndpoint } from "./vm-endpoints.ts";

if (process.env.NVMIG_TEST_TRACE) {
  const { subscribe } = await import("node:diagnostics_channel");
  for (const name of ["nvmig:vfio", "nvmig:controller", "nvmig:nvme"])
    subscribe(name, (m) =>
      console.error(
        name,
        JSON.stringify(m, (_k, v) => (typeof v === "bigint" ? String(v) : v)).slice(0, 300),
      ),
    );
}
const dir = mkdtempSync(join(tmpdir(), "nvmig-xvmm-"));
const exports: FunctionExport[] = [];
const hosts: HostNode[] = [];
after(async () => {
  for (const e of exports) e.close();
  for (const h of hosts) await h.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function host(
  name: string,
  storage: "local" | "shared",
  store = createMemoryBlockStore({ lbaBytes: 4096, lbaCount: 4096 }),
) {
  const h = await HostNode.start({
    name,
    namespaces: [{ nsid: 1, store }],
    secondaryCount: 1,
    pfHostMemoryBytes: 4 << 20,
  });
  hosts.push(h);
  await h.bringUpVf(1, 2);
  const portal = await createVfPortal(h, 1, { storage });
  const path = join(dir, `${name}.sock`);
  exports.push(exportNvmeFunction(h.vf(1), { path, label: `${name}/vf1`, portal }));
  return path;
}

async function connectControl(path: string): Promise<VmControlClient> {
  const end = Date.now() + 20_000;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new Error(`no control socket at ${path}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return VmControlClient.connect(path);
}

for (const storage of ["shared", "local"] as const) {
  test(`in-band migration between two VMM processes, RAM over TCP, ${storage} storage: zero loss`, {
    timeout: 90_000,
  }, async () => {
    const shared = createMemoryBlockStore({ lbaBytes: 4096, lbaCount: 4096 });
    const a = await host(`a-${storage}`, storage, storage === "shared" ? shared : undefined);
    const b = await host(`b-${storage}`, storage, storage === "shared" ? shared : undefined);
    const srcControl = join(dir, `src-${storage}.control`);
    const dstControl = join(dir, `dst-${storage}.control`);
    const src = spawnVmChild({
      attach: a,
      json: true,
      memoryMib: 8,
      queues: 2,
      queueDepth: 8,
      readPercent: 50,
      lbaRange: [0, 1024],
      seed: 11,
      control: srcControl,
    });
    const dst = spawnVmChild({
      attach: b,
      json: true,
      memoryMib: 8,
      incoming: "127.0.0.1:0",
      control: dstControl,
    });
    let sc: VmControlClient | undefined;
    let dc: VmControlClient | undefined;
    try {
      sc = await connectControl(srcControl);
      dc = await connectControl(dstControl);
      await new Promise((r) => setTimeout(r, 300)); // let the guest write something
      const vms = await remoteVmPair(sc, dc);
      const report = await migrate({
        source: { device: vmmDeviceEndpoint(sc), vm: vms.source },
        destination: { device: vmmDeviceEndpoint(dc), vm: vms.destination },
        maxDowntimeMs: 300,
        // A write-heavy guest on a loaded machine may never converge; switch over after a few rounds.
        maxIterations: 4,
        storage,
        onProgress: (e) => {
          if (process.env.NVMIG_TEST_TRACE) console.error(JSON.stringify(e).slice(0, 300));
        },
      });
      assert.equal(report.result, "completed", JSON.stringify(report.error));
      assert.ok(report.ramBytesTransferred >= 8 << 20, "all of RAM moved at least once");
      assert.ok(report.stateBytes > 0);
      assert.equal(report.warnings, undefined, JSON.stringify(report.warnings));
      await controlCall(sc, "release");
      const [[srcCode]] = await Promise.all([src.exited]);
      assert.equal(srcCode, 0);
      assert.equal(lastVmResult(src.stdout()).outcome, "handed-over");
      const described = await controlCall(dc, "describe");
      assert.equal(described.role, "running", "the guest runs in the destination VMM");
      const before = ((await controlCall(dc, "stats")).stats as { workload: { ops: number } }).workload.ops;
      await new Promise((r) => setTimeout(r, 300));
      const afterOps = ((await controlCall(dc, "stats")).stats as { workload: { ops: number } }).workload.ops;
      assert.ok(afterOps > before, "the workload continues on host B");
      await controlCall(dc, "stop");
      assert.equal((await dst.exited)[0], 0);
      const r = lastVmResult(dst.stdout());
      assert.equal(r.verified, true, JSON.stringify(r));
      assert.equal(r.lostWrites, 0);
      assert.equal(r.badReads, 0);
      assert.equal(r.duplicateCompletions, 0);
      assert.equal(r.missingCompletions, 0);
      assert.ok(r.ops > 0);
    } finally {
      sc?.close();
      dc?.close();
      src.proc.kill("SIGKILL");
      dst.proc.kill("SIGKILL");
    }
  });
}
