/**
 * Controller Data Queue (45h) — TP4159: Create (SEL 0) / Delete (SEL 1) a User Data Migration Queue
 * (QT 0) in the controlling controller's memory, for the controller named by CQS (CNTLID).
 * CDQSIZE is in dwords (8 per 32-byte entry; at least 2 entries); the queue must be physically
 * contiguous (PC = 1, MCDQPC = 1) and mapped. One UDMQ per controlled controller (MCUDMQ), else
 * Not Enough Resources. CQE DW0[15:0] = CDQID. Unknown CDQID on Delete → Invalid Controller Data Queue.
 *
 * Also Set / Get Features 21h (Controller Data Queue): the host's head pointer and the tail pointer trigger.
 */
import {
  decodeControllerDataQueue,
  UDMQ_ENTRY_BYTES,
  UDMQ_ENTRY_DWORDS,
} from "../../nvme/controller-data-queue.ts";
import { decodeSetControllerDataQueue, encodeControllerDataQueueFeatureData } from "../../nvme/features.ts";
import { FeatureId } from "../../nvme/identifiers.ts";
import { readU64AsNumber } from "../../nvme/sqe.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { targetByCntlid } from "../migration/targets.ts";
import { UserDataMigrationQueue, udmqsOf } from "../migration/user-data-queue.ts";
import { registerFeature } from "./features.ts";

function dwords(c: NvmeController) {
  return {
    cdw10: c.sqe.getUint32(40, true),
    cdw11: c.sqe.getUint32(44, true),
    cdw12: c.sqe.getUint32(48, true),
    cdw13: c.sqe.getUint32(52, true),
  };
}

export function controllerDataQueue(c: NvmeController): number {
  const d = decodeControllerDataQueue(dwords(c));
  if (!d.ok) return Status.InvalidField;
  const f = d.value;
  const qs = udmqsOf(c);
  if (f.sel === 1) {
    const q = qs.get(f.cdqid);
    if (q === undefined) return Status.InvalidControllerDataQueue;
    q.destroy();
    qs.delete(f.cdqid);
    return Status.Success;
  }
  if (f.qt !== 0 || !f.pc) return Status.InvalidField;
  const t = targetByCntlid(c, f.cqs);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  if (f.cdqsize % UDMQ_ENTRY_DWORDS !== 0 || f.cdqsize < 2 * UDMQ_ENTRY_DWORDS) return Status.InvalidField;
  for (const q of qs.values()) if (q.target === t) return Status.NotEnoughResources;
  const entries = f.cdqsize / UDMQ_ENTRY_DWORDS;
  const base = readU64AsNumber(c.sqe, 24);
  if (base % 4096 !== 0) return Status.PrpOffsetInvalid;
  if (!c.dma.find(base, entries * UDMQ_ENTRY_BYTES)?.writable) return Status.DataTransferError;
  let id = 1;
  while (qs.has(id)) id++;
  c.dma.write(base, new Uint8Array(entries * UDMQ_ENTRY_BYTES)); // phase tags start at 0
  qs.set(id, new UserDataMigrationQueue(id, t, c, base, entries));
  c.dw0 = id;
  return Status.Success;
}

registerFeature(FeatureId.ControllerDataQueue, {
  primaryOnly: true,
  set: (c) => {
    const f = decodeSetControllerDataQueue(dwords(c));
    const q = udmqsOf(c).get(f.cdqid);
    if (q === undefined) return Status.InvalidControllerDataQueue;
    if (f.hp >= q.sizeEntries || (f.etpt && f.tpt >= q.sizeEntries)) return Status.InvalidField;
    q.head = f.hp;
    q.etpt = f.etpt;
    q.tpt = f.tpt;
    return Status.Success;
  },
  get: (c) => {
    const q = udmqsOf(c).get(c.sqe.getUint32(44, true) & 0xffff);
    if (q === undefined) return 0;
    // The 8-byte {HP, TPT} goes to the data buffer; DW0 repeats HP.
    c.transferToHost(encodeControllerDataQueueFeatureData({ hp: q.head, tpt: q.tpt }));
    return q.head;
  },
});
