/**
 * The VM as a separate process (`runVmProcess` in a child `node --import tsx`), attached to a function
 * exported in this process by the host's exporter (`exportNvmeFunction`): guest RAM is the child's memfd mmap'd here, doorbells are the child's stores
 * into our doorbell page, interrupts our eventfd writes. Also: the control channel, including a
 * TP4159 migration of the child's VF to another VF with `retarget` over the channel.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { VmOptions } from "../cli/types.ts";
import type { NvmeFunction } from "../controller/nvme-function.ts";
import { Tp4159Commands } from "../host/agent/tp4159-commands.ts";
import { HostNode } from "../host/host-node.ts";
import { exportNvmeFunction, type FunctionExport } from "../host/vfio-user-export.ts";
import { SuspendType } from "../nvme/migration-commands.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { lastVmResult, spawnVmChild } from "./fixtures/spawn-vm.ts";
import { VmControlClient } from "./vm-control.ts";
import { runVmProcess, type VmProcessOptions } from "./vm-process.ts";

// The CLI hands its parsed options straight to runVmProcess.
const _cliOptionsFit = (o: VmOptions): VmProcessOptions => o;
void _cliOptionsFit;

const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), "nvmig-vm-process-"));
const store = createMemoryBlockStore({ lbaBytes: 4096, lbaCount: 8192 });
const host = await HostNode.start({
  name: "vm-process-test",
  namespaces: [{ nsid: 1, store }],
  secondaryCount: 3,
  pfHostMemoryBytes: 4 * MiB,
});
after(async () => {
  await host.stop();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function serve(fn: NvmeFunction, name: string): FunctionExport {
  return exportNvmeFunction(fn, { path: join(dir, name), label: name });
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("nvmig vm as a separate process", () => {
  it("attaches over the socket, runs the verified workload and exits 0 with verified: true", {
    timeout: 30_000,
  }, async () => {
    const served = serve(await host.bringUpVf(1, 2), "vf1.sock");
    const child = spawnVmChild({
      attach: served.path,
      json: true,
      memoryMib: 16,
      queues: 2,
      queueDepth: 8,
      blockBytes: 4096,
      readPercent: 50,
      pattern: "random",
      ops: 3000,
      lbaRange: [0, 2048],
      seed: 5,
    });
    try {
      const [code] = await child.exited;
      assert.equal(code, 0);
      const r = lastVmResult(child.stdout());
      assert.equal(r.verified, true, JSON.stringify(r.failures));
      assert.ok(r.ops >= 3000);
      assert.equal(r.lostWrites + r.badReads + r.duplicateCompletions + r.missingCompletions, 0);
      assert.ok(r.interrupts > 0, "interrupts came through eventfds");
      assert.equal(r.doorbellsMapped, true);
      assert.ok(r.mmioDoorbells > 0);
      await waitFor("the VM's disconnect", () => !served.server.connected);
    } finally {
      child.proc.kill();
      served.close();
    }
  });

  it("control channel: pause/resume/stats/dirty log/readPages, and retarget across a TP4159 migration", {
    timeout: 30_000,
  }, async () => {
    const srcFn = await host.bringUpVf(2, 1);
    const dstFn = await host.bringUpVf(3, 1);
    const src = serve(srcFn, "vf2.sock");
    const dst = serve(dstFn, "vf3.sock");
    const controlPath = join(dir, "vm2.control");
    const child = spawnVmChild({
      attach: src.path,
      json: true,
      memoryMib: 16,
      queueDepth: 8,
      pattern: "random",
      readPercent: 50,
      lbaRange: [4096, 512],
      durationMs: 60_000,
      seed: 9,
      control: controlPath,
    });
    let control: VmControlClient | undefined;
    try {
      await waitFor("the control socket", () => existsSync(controlPath));
      control = await VmControlClient.connect(controlPath);
      const hello = await control.request("hello");
      assert.equal(hello.ok, true);
      assert.equal(hello.protocol, 1);
      assert.equal((await control.request("startDirtyLog")).ok, true);
      await new Promise((r) => setTimeout(r, 300));
      const opsOf = async () => {
        const s = await control!.request("stats");
        return (s.stats as { workload: { ops: number } }).workload.ops;
      };
      assert.ok((await opsOf()) > 0, "the workload runs");

      // Stop the vCPUs, move the function's state from VF2 to VF3, retarget, resume.
      const paused = await control.request("pause");
      assert.equal(paused.ok, true);
      assert.equal(paused.paused, true);
      const tp = await Tp4159Commands.open(host.pfDriver);
      await tp.suspend(srcFn.controller.cntlid, SuspendType.Suspend, false);
      const frozen = await opsOf();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await opsOf(), frozen, "no completion while paused");
      const dirty = await control.request("collectDirty");
      const pages = dirty.pages as number[];
      assert.ok(pages.length > 0, "the guest wrote pages (SQEs, write buffers)");
      const read = await control.request("readPages", { pages: pages.slice(0, 3) });
      assert.equal(read.ok, true);
      assert.equal(Buffer.from(read.data as string, "base64").byteLength, Math.min(3, pages.length) * 4096);
      const bad = await control.request("readPages", { pages: [1 << 30] });
      assert.equal(bad.error, "bad-request");
      assert.equal((await control.request("nope")).error, "unknown-command");

      const state = await tp.getState(srcFn.controller.cntlid, { csvi: 0, csuuidi: 0 });
      const moved = await control.request("retarget", { socket: dst.path });
      assert.equal(moved.ok, true, String(moved.message));
      await tp.suspend(dstFn.controller.cntlid, SuspendType.Suspend, false);
      await tp.setState(dstFn.controller.cntlid, { csvi: 0, csuuidi: 0 }, state);
      await tp.resume(dstFn.controller.cntlid);
      assert.equal((await control.request("resume")).ok, true);
      await waitFor("I/O on the destination", () =>
        dstFn.controller.cqs.some((cq) => cq !== undefined && cq.cqid === 1),
      );
      const afterMove = await opsOf();
      await new Promise((r) => setTimeout(r, 300));
      assert.ok((await opsOf()) > afterMove, "the workload continues on VF3");
      assert.equal(src.server.connected, false, "the VM left VF2's socket");

      assert.equal((await control.request("stop")).ok, true);
      const [code] = await child.exited;
      const r = lastVmResult(child.stdout());
      assert.equal(r.verified, true, JSON.stringify(r));
      assert.equal(code, 0);
      assert.ok(r.ops > frozen);
    } finally {
      control?.close();
      child.proc.kill();
      src.close();
      dst.close();
    }
  });

  it("fails with a clear error when nothing listens at the socket", async () => {
    await assert.rejects(runVmProcess({ attach: join(dir, "nobody.sock"), ops: 1 }), {
      name: "VmProcessError",
      code: "connect-failed",
    });
  });
});
