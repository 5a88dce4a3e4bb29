/**
 * Builds an NVMe subsystem with its functions: the PF (primary controller, CNTLID 0) and, when the PF's
 * SR-IOV capability enables VFs, one VF function per secondary controller (CNTLID = VFN). Each function
 * has its own DMA map (the memory its user — a VM, or the host itself for the PF — lets it address).
 *
 * Wiring of the spec's rules across functions:
 *  - SR-IOV VF Enable with NumVFs = n creates VF functions 1..n; their secondary controllers start
 *    Offline. Clearing VF Enable removes the VFs and takes their secondaries offline.
 *  - A reset or disable of the primary controller takes every secondary offline (NVMe Base §8.2.6).
 */
import { NvmeFunction } from "../controller/nvme-function.ts";
import { Subsystem, type SubsystemOptions } from "../controller/subsystem.ts";
import { Dma } from "../memory/dma.ts";

export interface SubsystemHostOptions extends SubsystemOptions {
  /** I/O queue pairs of the PF. Default 64, range 1..511. */
  pfIoQueuePairs?: number;
  /** MSI-X vectors of each VF function (VIFRSM bound). Default 65, range 2..2048. */
  vfMsixVectors?: number;
}

export class SubsystemHost {
  readonly subsystem: Subsystem;
  readonly pf: NvmeFunction;
  readonly vfs = new Map<number, NvmeFunction>();
  private readonly vfMsixVectors: number;
  /** Listeners told when the set of VF functions changes. */
  readonly vfListeners: ((vfn: number, fn: NvmeFunction | undefined) => void)[] = [];

  constructor(opts: SubsystemHostOptions) {
    this.subsystem = new Subsystem(opts);
    const pfPairs = opts.pfIoQueuePairs ?? 64;
    this.vfMsixVectors = opts.vfMsixVectors ?? 65;
    this.pf = new NvmeFunction({
      cntlid: 0,
      primary: true,
      subsystem: this.subsystem,
      dma: new Dma(),
      maxIoQueuePairs: pfPairs,
      msixVectors: pfPairs + 1,
      totalVfs: this.subsystem.secondaries.length,
    });
    this.subsystem.addController(this.pf.controller);
    for (const nsid of this.subsystem.namespaces.keys()) this.pf.controller.attachedNamespaces.add(nsid);
    this.pf.pci.hooks.onSriovChange = (s) => this.setVfs(s.vfEnable ? s.numVfs : 0);
    this.pf.controller.resetObservers.push(() => this.offlineAllSecondaries());
  }

  /** The function of controller `cntlid` (0 = PF), if it exists. */
  functionOf(cntlid: number): NvmeFunction | undefined {
    return cntlid === 0 ? this.pf : this.vfs.get(cntlid);
  }

  private setVfs(n: number): void {
    const sub = this.subsystem;
    sub.vfsEnabled = n;
    for (const [vfn, fn] of [...this.vfs]) {
      if (vfn <= n) continue;
      const rec = sub.secondary(vfn);
      if (rec !== undefined) rec.online = false;
      fn.controller.setOnline(false, 0, 0);
      sub.controllers.delete(vfn);
      this.vfs.delete(vfn);
      for (const l of this.vfListeners) l(vfn, undefined);
    }
    for (let vfn = 1; vfn <= n; vfn++) {
      if (this.vfs.has(vfn)) continue;
      const rec = sub.secondaries.find((s) => s.vfn === vfn);
      if (rec === undefined) continue;
      const fn = new NvmeFunction({
        cntlid: rec.scid,
        primary: false,
        subsystem: sub,
        dma: new Dma(),
        maxIoQueuePairs: 1,
        msixVectors: this.vfMsixVectors,
      });
      for (const nsid of sub.namespaces.keys()) fn.controller.attachedNamespaces.add(nsid);
      sub.addController(fn.controller);
      this.vfs.set(vfn, fn);
      for (const l of this.vfListeners) l(vfn, fn);
    }
  }

  private offlineAllSecondaries(): void {
    for (const rec of this.subsystem.secondaries) {
      if (!rec.online) continue;
      rec.online = false;
      this.subsystem.controllers.get(rec.scid)?.setOnline(false, rec.nvq, rec.nvi);
    }
  }
}
