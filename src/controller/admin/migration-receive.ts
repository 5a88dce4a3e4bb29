/**
 * Migration Receive (42h) — TP4159 (NVMe Base 2.1): Get Controller State (SEL 0). The target is
 * CDW11 CNTLID; Offset (CDW12/13) and NUMD (CDW15, 0's based) select a window of the state, so a
 * large state is read in several commands (the state is captured at offset 0 and served from that
 * capture until Resume). CSVI = 0 omits the NVMe Controller State, CSUUIDI = 0 the vendor section.
 * CQE DW0 bit 0 (CSUP): the controller is suspended. The target must be suspended.
 */
import {
  decodeMigrationReceive,
  MIGRATION_RECEIVE_DW0_CSUP,
  migrationReceiveDataBytes,
} from "../../nvme/migration-commands.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { captureControllerState } from "../migration/controller-state.ts";
import { targetByCntlid, transfersFor } from "../migration/targets.ts";

export function migrationReceive(c: NvmeController): number {
  const d = decodeMigrationReceive({
    cdw10: c.sqe.getUint32(40, true),
    cdw11: c.sqe.getUint32(44, true),
    cdw12: c.sqe.getUint32(48, true),
    cdw13: c.sqe.getUint32(52, true),
    cdw14: c.sqe.getUint32(56, true),
    cdw15: c.sqe.getUint32(60, true),
  });
  if (!d.ok) return Status.InvalidField;
  const f = d.value;
  const t = targetByCntlid(c, f.cntlid);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  if (!t.suspended) return Status.ControllerNotSuspended;
  if (f.csvi > 1 || f.csuuidi > 1) return Status.InvalidField;
  const bytes = migrationReceiveDataBytes(f.numd);
  if (bytes > c.mdtsBytes) return Status.InvalidField;
  const x = transfersFor(c, t.cntlid);
  if (f.offset === 0 || x.saved === undefined) {
    x.saved = captureControllerState(t, { nvmeState: f.csvi !== 0, vendorState: f.csuuidi !== 0 });
  }
  if (f.offset % 4 !== 0 || f.offset > x.saved.byteLength) return Status.InvalidField;
  const out = new Uint8Array(bytes);
  out.set(x.saved.subarray(f.offset, Math.min(x.saved.byteLength, f.offset + bytes)));
  const st = c.transferToHost(out);
  if (st === Status.Success) c.dw0 = t.suspended ? MIGRATION_RECEIVE_DW0_CSUP : 0;
  return st;
}
