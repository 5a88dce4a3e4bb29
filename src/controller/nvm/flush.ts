/**
 * Flush (00h) — NVM Command Set Specification 1.1 §3.2.2 / NVMe Base 2.1 §7.1.
 * Makes every completed write durable. NSID FFFFFFFFh flushes every attached namespace.
 */
import { Status } from "../../nvme/status.ts";
import { type NvmeController, PENDING } from "../controller.ts";
import type { SubmissionQueue } from "../queues.ts";
import { activeNamespace, NSID_BROADCAST } from "./dispatch.ts";

export function flush(c: NvmeController, sq: SubmissionQueue, nsid: number): number {
  const targets =
    nsid === NSID_BROADCAST
      ? [...c.attachedNamespaces].map((id) => c.subsystem.namespaces.get(id)).filter((n) => n !== undefined)
      : [activeNamespace(c, nsid)];
  if (targets.some((t) => t === undefined) || targets.length === 0) return Status.InvalidNamespace;
  const cid = c.sqe.getUint16(2, true);
  Promise.all(targets.map((t) => t!.store.flush())).then(
    () => c.completeLater(sq, cid, Status.Success),
    () => c.completeLater(sq, cid, Status.InternalError),
  );
  return PENDING;
}
