/**
 * NVM command set dispatch (NVM Command Set Specification 1.1 §3): decodes the opcode and namespace,
 * then calls the handler named after the command.
 */
import { NvmOpcode } from "../../nvme/opcodes.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";
import type { Namespace } from "../namespace.ts";
import type { SubmissionQueue } from "../queues.ts";
import { compare } from "./compare.ts";
import { datasetManagement } from "./dataset-management.ts";
import { flush } from "./flush.ts";
import { read, write } from "./read-write.ts";
import { writeZeroes } from "./write-zeroes.ts";

export const NSID_BROADCAST = 0xffffffff;

export function dispatchNvmCommand(c: NvmeController, sq: SubmissionQueue): number {
  const opc = c.sqe.getUint8(0);
  if ((c.sqe.getUint8(1) & 0x3) !== 0) return Status.InvalidField; // fused operations not supported
  const nsid = c.sqe.getUint32(4, true);
  if (opc === NvmOpcode.Flush) return flush(c, sq, nsid);
  const ns = activeNamespace(c, nsid);
  if (ns === undefined) {
    if (!isKnownNvmOpcode(opc)) return invalidOpcode(c, opc, sq);
    return Status.InvalidNamespace;
  }
  switch (opc) {
    case NvmOpcode.Read:
      return read(c, sq, ns);
    case NvmOpcode.Write:
      return write(c, sq, ns);
    case NvmOpcode.Compare:
      return compare(c, sq, ns);
    case NvmOpcode.WriteZeroes:
      return writeZeroes(c, sq, ns);
    case NvmOpcode.DatasetManagement:
      return datasetManagement(c, ns);
    default:
      return invalidOpcode(c, opc, sq);
  }
}

/** The namespace `nsid` if it exists and is attached to controller `c`. */
export function activeNamespace(c: NvmeController, nsid: number): Namespace | undefined {
  if (!c.attachedNamespaces.has(nsid)) return undefined;
  return c.subsystem.namespaces.get(nsid);
}

function isKnownNvmOpcode(opc: number): boolean {
  return (
    opc === NvmOpcode.Read ||
    opc === NvmOpcode.Write ||
    opc === NvmOpcode.Compare ||
    opc === NvmOpcode.WriteZeroes ||
    opc === NvmOpcode.DatasetManagement
  );
}

function invalidOpcode(c: NvmeController, opc: number, sq: SubmissionQueue): number {
  emitEvent(ControllerEvent.invalidOpcode, c.cntlid, { sqid: sq.sqid, opcode: opc });
  return Status.InvalidOpcode;
}
