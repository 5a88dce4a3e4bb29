/**
 * Migration Send (41h) — TP4159 (NVMe Base 2.1): Suspend (SEL 0), Resume (SEL 1), Set Controller State
 * (SEL 2). Submitted to the controlling (primary) controller; the target is CDW11 CNTLID.
 *
 * Status rules: unknown target → Invalid Controller Identifier; Suspend of a suspended controller →
 * Controller Suspended; Resume or Set Controller State on a controller that is not suspended →
 * Controller Not Suspended; a bad SEQIND / offset sequence, an unsupported CSVI / CSUUIDI, or a state
 * that fails validation → Invalid Field in Command, and the target is unchanged.
 */

import { Esa } from "../../nvme/controller-data-queue.ts";
import {
  decodeMigrationSend,
  MigrationSendSel,
  migrationSendDataBytes,
  SequenceIndicator,
  SuspendType,
} from "../../nvme/migration-commands.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { restoreControllerState } from "../migration/controller-state.ts";
import { resumeController, suspendCommand } from "../migration/suspend.ts";
import { targetByCntlid, transfersFor } from "../migration/targets.ts";
import { udmqsOf } from "../migration/user-data-queue.ts";
import type { SubmissionQueue } from "../queues.ts";

/** Largest controller state accepted by Set Controller State, bytes (1 MiB). */
export const MAX_CONTROLLER_STATE_BYTES = 1 << 20;

/**
 * On Suspend, once the target is idle: post ESA 3 (last — suspended) in the target's UDMQ; DUDMQ also
 * deletes the queue. Not earlier: a command fetched before the suspend may still change blocks (a Write
 * whose data arrives over remote DMA), and that change must be logged before the last entry.
 */
function endUserDataLogging(primary: NvmeController, target: NvmeController, dudmq: boolean): void {
  const qs = udmqsOf(primary);
  for (const [id, q] of qs) {
    if (q.target !== target) continue;
    q.stopLogging(Esa.LastControllerSuspended);
    if (dudmq) {
      q.destroy();
      qs.delete(id);
    }
  }
}

export function migrationSend(c: NvmeController, sq: SubmissionQueue): number {
  const d = decodeMigrationSend({
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
  switch (f.sel) {
    case MigrationSendSel.Suspend: {
      if (f.stype === SuspendType.SuspendNotification) {
        t.suspendNotified = true;
        return Status.Success;
      }
      if (f.stype !== SuspendType.Suspend) return Status.InvalidField;
      if (t.suspended) return Status.ControllerSuspended;
      return suspendCommand(c, sq, t, () => endUserDataLogging(c, t, f.dudmq));
    }
    case MigrationSendSel.Resume: {
      if (!t.suspended) return Status.ControllerNotSuspended;
      transfersFor(c, t.cntlid).saved = undefined;
      resumeController(t);
      return Status.Success;
    }
    case MigrationSendSel.SetControllerState: {
      if (!t.suspended) return Status.ControllerNotSuspended;
      if (f.csvi > 1 || f.csuuidi > 1) return Status.InvalidField;
      const x = transfersFor(c, t.cntlid);
      const first = f.seqind === SequenceIndicator.First || f.seqind === SequenceIndicator.Entire;
      const last = f.seqind === SequenceIndicator.Last || f.seqind === SequenceIndicator.Entire;
      if (first) {
        x.incoming = [];
        x.incomingBytes = 0;
        if (f.offset !== 0) return Status.InvalidField;
      } else if (f.offset !== x.incomingBytes || x.incoming.length === 0) {
        return Status.InvalidField;
      }
      const bytes = migrationSendDataBytes(f.numd);
      if (bytes > c.mdtsBytes || x.incomingBytes + bytes > MAX_CONTROLLER_STATE_BYTES)
        return Status.InvalidField;
      if (bytes > 0) {
        const data = c.transferFromHost(bytes);
        if (typeof data === "number") return data;
        x.incoming.push(data);
        x.incomingBytes += bytes;
      }
      if (!last) return Status.Success;
      const blob = concat(x.incoming, x.incomingBytes);
      x.incoming = [];
      x.incomingBytes = 0;
      const why = restoreControllerState(t, blob);
      return why === undefined ? Status.Success : Status.InvalidField;
    }
  }
}

export function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
