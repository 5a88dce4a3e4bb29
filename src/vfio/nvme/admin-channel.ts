/**
 * The "software doorbell": how a controlled function's variant driver reaches its controlling function.
 * Every call becomes one real admin command (an SQE) on the controlling function's admin queue, the
 * way Linux's `nvme_submit_vf_cmd` submits on the PF's admin queue. The channel owns the data buffers
 * and PRPs; callers pass and get plain bytes.
 */
export interface AdminCommand {
  opc: number;
  nsid?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
  /** Data sent to the controller (host → controller). */
  dataOut?: Uint8Array;
  /** Bytes of data expected from the controller (controller → host). */
  dataInBytes?: number;
  /** PRP1 for commands that name memory the caller allocated with `hostBuffer` (e.g. a UDMQ). */
  prp1?: number;
}

export interface AdminReply {
  /** 15-bit NVMe Status Field (0 = success). */
  status: number;
  dw0: number;
  /** The `dataInBytes` bytes returned, when asked for and the command succeeded. */
  data?: Uint8Array;
}

/** Memory of the controlling function's host that the controller may DMA into (e.g. a UDMQ). */
export interface HostBuffer {
  /** Address the controller uses (an IOVA in the controlling function's DMA map). */
  readonly iova: number;
  /** The same bytes, as the host reads them. */
  readonly bytes: Uint8Array;
  release(): void;
}

export interface AdminChannel {
  submit(cmd: AdminCommand): Promise<AdminReply>;
  /** Allocates page-aligned, zeroed host memory the controller can write (queues of the controller). */
  hostBuffer(lengthBytes: number): HostBuffer;
}

/** Block I/O on the controlling function (namespace data of local-storage migration). */
export interface BlockChannel {
  /** Reads `nlb` (1-based) blocks at `slba` of `nsid`. */
  read(nsid: number, slba: number, nlb: number): Promise<{ status: number; data?: Uint8Array }>;
  /** Writes `data` (whole blocks) at `slba` of `nsid`. */
  write(nsid: number, slba: number, data: Uint8Array): Promise<{ status: number }>;
  /** Logical block size of `nsid`, bytes (undefined if the namespace is unknown). */
  lbaBytes(nsid: number): number | undefined;
}
