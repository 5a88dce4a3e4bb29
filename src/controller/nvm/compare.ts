/**
 * Compare (05h) — NVM Command Set Specification 1.1 §3.2.1: compares host data with the stored blocks;
 * a mismatch completes with Compare Failure. Host data in remote memory (fd-less vfio-user maps) is
 * fetched asynchronously by `remote-transfer.ts`.
 */
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import type { Namespace } from "../namespace.ts";
import type { SubmissionQueue } from "../queues.ts";
import { decodeLbaRange } from "./lba-range.ts";
import { mayBeRemote, remoteCompare } from "./remote-transfer.ts";

export function compare(c: NvmeController, sq: SubmissionQueue, ns: Namespace): number {
  const r = decodeLbaRange(c, ns);
  if (typeof r === "number") return r;
  const bytes = r.nlb * ns.lbaBytes;
  if (bytes > c.mdtsBytes) return Status.InvalidField;
  const host = c.transferFromHost(bytes);
  if (typeof host === "number") {
    return mayBeRemote(c, host) ? remoteCompare(c, sq, ns, r.slba, bytes) : host;
  }
  const stored = new Uint8Array(bytes);
  ns.store.read(r.slba * ns.lbaBytes, stored);
  for (let i = 0; i < bytes; i++) if (stored[i] !== host[i]) return Status.CompareFailure;
  return Status.Success;
}
