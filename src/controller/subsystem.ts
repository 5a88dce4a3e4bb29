/**
 * The NVM subsystem: identity, namespaces shared by all controllers, the primary controller (PF,
 * CNTLID 0) and its secondary controllers (VFs, CNTLID 1..n, VFN = CNTLID), and the flexible
 * resource pools managed by Virtualization Management (NVMe Base 2.1 §8.2.6).
 */
import type { BlockStore } from "../storage/block-store.ts";
import { dispatchAdminCommand } from "./admin/dispatch.ts";
import type { NvmeController } from "./controller.ts";
import { Namespace } from "./namespace.ts";
import { dispatchNvmCommand } from "./nvm/dispatch.ts";
import type { SubmissionQueue } from "./queues.ts";

export interface SubsystemIdentity {
  /** PCI Vendor ID. Default 0x1b36 is not ours to use in products; nvmig uses 0x1d1d-style test ids. */
  vid: number;
  /** PCI Subsystem Vendor ID. */
  ssvid: number;
  /** Serial Number, up to 20 ASCII characters. */
  serial: string;
  /** Model Number, up to 40 ASCII characters. */
  model: string;
  /** Firmware Revision, up to 8 ASCII characters. */
  firmware: string;
  /** NVM Subsystem NVMe Qualified Name, up to 223 characters. */
  subnqn: string;
  /** IEEE OUI, 3 bytes as a number. */
  ieee: number;
}

/** A secondary controller as listed in the Secondary Controller List (CNS 15h). */
export interface SecondaryControllerRecord {
  /** Secondary Controller Identifier (its CNTLID). */
  scid: number;
  /** Virtual Function Number, 1-based. */
  vfn: number;
  online: boolean;
  /** Virtual Queue resources assigned (admin queue included). */
  nvq: number;
  /** Virtual Interrupt resources assigned. */
  nvi: number;
}

export interface VirtualizationConfig {
  /** VQ resources private to the primary (VQPRT); the primary's queues. */
  vqPrivate: number;
  /** VQ flexible pool (VQFRT). */
  vqFlexible: number;
  /** VI resources private to the primary (VIPRT). */
  viPrivate: number;
  /** VI flexible pool (VIFRT). */
  viFlexible: number;
  /** Max VQ flexible resources per secondary (VQFRSM). */
  vqMaxPerSecondary: number;
  /** Max VI flexible resources per secondary (VIFRSM). */
  viMaxPerSecondary: number;
}

export interface SubsystemOptions {
  identity?: Partial<SubsystemIdentity>;
  namespaces: { nsid: number; store: BlockStore }[];
  /** Number of secondary controllers (TotalVFs). Default 4, range 0..127. */
  secondaryCount?: number;
  virtualization?: Partial<VirtualizationConfig>;
}

export const DEFAULT_IDENTITY: SubsystemIdentity = {
  vid: 0x1d1d,
  ssvid: 0x1d1d,
  serial: "NVMIG0001",
  model: "nvmig emulated NVMe controller",
  firmware: "0.1.0",
  subnqn: "nqn.2026-11.io.nvmig:subsystem:0001",
  ieee: 0x6e766d,
};

export class Subsystem {
  readonly identity: SubsystemIdentity;
  readonly namespaces = new Map<number, Namespace>();
  readonly controllers = new Map<number, NvmeController>();
  readonly secondaries: SecondaryControllerRecord[] = [];
  readonly virt: VirtualizationConfig;
  /** VQ / VI flexible resources allocated to the primary (VQRFAP / VIRFAP), effective after reset. */
  primaryFlexibleVq = 0;
  primaryFlexibleVi = 0;
  /** SR-IOV: VFs enabled in the PF's SR-IOV capability (VF Enable set, NumVFs). */
  vfsEnabled = 0;

  constructor(opts: SubsystemOptions) {
    this.identity = { ...DEFAULT_IDENTITY, ...opts.identity };
    for (const ns of opts.namespaces) this.namespaces.set(ns.nsid, new Namespace(ns, this.identity.serial));
    const n = opts.secondaryCount ?? 4;
    this.virt = {
      vqPrivate: 65,
      vqFlexible: n * 9,
      viPrivate: 65,
      viFlexible: n * 9,
      vqMaxPerSecondary: 65,
      viMaxPerSecondary: 65,
      ...opts.virtualization,
    };
    for (let i = 1; i <= n; i++) this.secondaries.push({ scid: i, vfn: i, online: false, nvq: 0, nvi: 0 });
  }

  get primary(): NvmeController | undefined {
    return this.controllers.get(0);
  }

  addController(c: NvmeController): void {
    this.controllers.set(c.cntlid, c);
  }

  secondary(scid: number): SecondaryControllerRecord | undefined {
    return this.secondaries.find((s) => s.scid === scid);
  }

  /** VQ / VI flexible resources assigned to secondaries (VQRFA / VIRFA counts them with the primary's). */
  flexibleAssigned(): { vq: number; vi: number } {
    let vq = this.primaryFlexibleVq;
    let vi = this.primaryFlexibleVi;
    for (const s of this.secondaries) {
      vq += s.nvq;
      vi += s.nvi;
    }
    return { vq, vi };
  }

  dispatchAdmin(c: NvmeController, sq: SubmissionQueue): number {
    return dispatchAdminCommand(c, sq);
  }

  dispatchIo(c: NvmeController, sq: SubmissionQueue): number {
    return dispatchNvmCommand(c, sq);
  }
}
