/**
 * One nvmig host in process: an NVMe subsystem (PF + VFs) over a namespace store, the PF driven by the
 * host's own driver, and the operations a host agent performs on its functions — enable VFs in the PF's
 * SR-IOV capability, give a VF resources and bring it online with Virtualization Management — all as
 * real config writes and admin commands.
 */
import type { NvmeFunction } from "../controller/nvme-function.ts";
import { VirtMgmtAction, VirtMgmtResourceType } from "../nvme/identifiers.ts";
import { AdminOpcode } from "../nvme/opcodes.ts";
import { statusName } from "../nvme/status.ts";
import { encodeVirtualizationManagement } from "../nvme/virtualization-management.ts";
import type { BlockStore } from "../storage/block-store.ts";
import { PfHostDriver } from "./pf-driver.ts";
import { SubsystemHost } from "./subsystem-host.ts";

/** Offset of the SR-IOV extended capability in the PF's config space. */
export const SRIOV_CAP_OFFSET = 0x100;
const SRIOV_CONTROL = 0x08;
const SRIOV_NUM_VFS = 0x10;
const SRIOV_VF_ENABLE = 1 << 0;
const SRIOV_VF_MSE = 1 << 3;

export interface HostNodeOptions {
  /** Host name, for logs and reports. */
  name: string;
  /** Namespaces of the subsystem. */
  namespaces: { nsid: number; store: BlockStore }[];
  /** Secondary controllers (TotalVFs). Default 4, range 1..127. */
  secondaryCount?: number;
  /** VFs enabled at start. Default = secondaryCount. */
  vfs?: number;
  /** Identity of the subsystem (hosts that migrate functions between them share it). */
  identity?: ConstructorParameters<typeof SubsystemHost>[0]["identity"];
  /** PF host driver memory, bytes. Default 64 MiB. */
  pfHostMemoryBytes?: number;
}

export class HostNodeError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "HostNodeError";
  }
}

export class HostNode {
  private constructor(
    readonly name: string,
    readonly subsystem: SubsystemHost,
    readonly pfDriver: PfHostDriver,
  ) {}

  static async start(o: HostNodeOptions): Promise<HostNode> {
    const sub = new SubsystemHost({
      namespaces: o.namespaces,
      secondaryCount: o.secondaryCount ?? 4,
      ...(o.identity !== undefined ? { identity: o.identity } : {}),
    });
    const pfDriver = await PfHostDriver.start(sub.pf, { hostMemoryBytes: o.pfHostMemoryBytes ?? 64 << 20 });
    const node = new HostNode(o.name, sub, pfDriver);
    node.enableVfs(o.vfs ?? sub.subsystem.secondaries.length);
    return node;
  }

  /** Sets NumVFs and VF Enable in the PF's SR-IOV capability (creates the VF functions, offline). */
  enableVfs(n: number): void {
    const pf = this.subsystem.pf;
    pf.configWrite(SRIOV_CAP_OFFSET + SRIOV_CONTROL, 2, 0);
    pf.configWrite(SRIOV_CAP_OFFSET + SRIOV_NUM_VFS, 2, n);
    if (n > 0) pf.configWrite(SRIOV_CAP_OFFSET + SRIOV_CONTROL, 2, SRIOV_VF_ENABLE | SRIOV_VF_MSE);
  }

  vf(vfn: number): NvmeFunction {
    const fn = this.subsystem.vfs.get(vfn);
    if (fn === undefined) throw new HostNodeError(`${this.name}: VF ${vfn} is not enabled`, 0);
    return fn;
  }

  private async virtMgmt(act: number, rt: number, cntlid: number, nr: number): Promise<number> {
    const r = await this.pfDriver.submit({
      opc: AdminOpcode.VirtualizationManagement,
      ...encodeVirtualizationManagement({ act, rt, cntlid, nr }),
    });
    if (r.status !== 0)
      throw new HostNodeError(
        `${this.name}: Virtualization Management act ${act} cntlid ${cntlid}: ${statusName(r.status)}`,
        r.status,
      );
    return r.dw0;
  }

  /**
   * Gives VF `vfn` `ioQueuePairs` I/O queue pairs (+ the admin queue) and as many interrupt vectors
   * plus one, and brings its secondary controller online (Offline → Assign VQ, VI → Online).
   */
  async bringUpVf(vfn: number, ioQueuePairs = 4): Promise<NvmeFunction> {
    const fn = this.vf(vfn);
    const cntlid = fn.controller.cntlid;
    await this.virtMgmt(VirtMgmtAction.SecondaryControllerOffline, 0, cntlid, 0);
    await this.virtMgmt(
      VirtMgmtAction.SecondaryControllerAssign,
      VirtMgmtResourceType.VqResources,
      cntlid,
      ioQueuePairs + 1,
    );
    await this.virtMgmt(
      VirtMgmtAction.SecondaryControllerAssign,
      VirtMgmtResourceType.ViResources,
      cntlid,
      ioQueuePairs + 1,
    );
    await this.virtMgmt(VirtMgmtAction.SecondaryControllerOnline, 0, cntlid, 0);
    return fn;
  }

  async stop(): Promise<void> {
    await this.pfDriver.stop();
  }
}
