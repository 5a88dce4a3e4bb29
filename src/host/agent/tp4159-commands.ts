/**
 * The TP4159 commands the agent issues on the controlling function's admin queue (the PF's
 * `AdminChannel`, a real SQE each), naming the controlled controller by CNTLID:
 *
 *   agent                                   PF admin SQ                     controlled controller
 *   Identify CNS 01h (OACS.HMLMS)  ───────►  once, at open
 *   Identify CNS 15h               ───────►  Secondary Controller List (CNTLID ↔ VFN, online)
 *   Suspend(stype, dudmq)          ───────►  Migration Send SEL 0           stop fetching, drain
 *   Resume                         ───────►  Migration Send SEL 1           fetch again
 *   getState(csvi, csuuidi)        ───────►  Migration Receive SEL 0 × n    (offset-windowed reads)
 *   setState(csvi, csuuidi, blob)  ───────►  Migration Send SEL 2 × n       validated whole, then applied
 *
 * The SQEs and the windowed whole-state transfer are the ones `ControllerOps` (the VFIO variant
 * driver's fixed profile: STYPE 1, CSVI = CSUUIDI = 1, VF found by VFN) uses, from
 * `src/vfio/nvme/controller-ops.ts`; here every field the out-of-band API exposes is a parameter. The
 * controller validates everything; a non-zero status becomes a `ControlError` through `device-errors.ts`.
 *
 * Compatibility: CSVI / CSUUIDI 0 in a request means "the device default", which is index 1 (the first
 * format the controller lists in CNS 20h) — nvmig controllers need their vendor section (CSUUIDI 1)
 * to restore, so a state without it could never be set anywhere.
 */

import { ControlError } from "../../control/errors.ts";
import {
  CONTROLLER_STATE_HEADER_BYTES,
  controllerStateBytes,
  decodeControllerStateHeader,
} from "../../nvme/controller-state.ts";
import { decodeIdentifyController, OACS_HMLMS } from "../../nvme/identify-controller.ts";
import {
  decodeSecondaryControllerList,
  type SecondaryControllerEntry,
} from "../../nvme/secondary-controller-list.ts";
import type { AdminChannel, AdminCommand, AdminReply } from "../../vfio/nvme/admin-channel.ts";
import {
  getControllerStateSqe,
  identifyControllerSqe,
  migrationSendResumeSqe,
  migrationSendSuspendSqe,
  receiveWholeControllerState,
  STATE_CHUNK_BYTES,
  type StateIndexes,
  secondaryControllerListSqe,
  sendWholeControllerState,
  setControllerStateSqe,
} from "../../vfio/nvme/controller-ops.ts";
import { checkStatus } from "./device-errors.ts";

export { STATE_CHUNK_BYTES, type StateIndexes };

/** Index used for a CSVI / CSUUIDI of 0 (see the compatibility rule above). */
export const DEFAULT_STATE_INDEX = 1;

/** CSVI / CSUUIDI of a request (0 = device default) → the indexes sent. */
function resolve(sel: StateIndexes): StateIndexes {
  return {
    csvi: sel.csvi === 0 ? DEFAULT_STATE_INDEX : sel.csvi,
    csuuidi: sel.csuuidi === 0 ? DEFAULT_STATE_INDEX : sel.csuuidi,
  };
}

export class Tp4159Commands {
  private constructor(
    private readonly channel: AdminChannel,
    /** CNTLID of the controlling controller itself (never a target). */
    readonly controllingCntlid: number,
  ) {}

  /**
   * Checks that the controlling function supports Host Managed Live Migration (Identify Controller
   * OACS.HMLMS); `failed-precondition` if not.
   */
  static async open(channel: AdminChannel): Promise<Tp4159Commands> {
    const id = await channel.submit(identifyControllerSqe());
    checkStatus("Identify Controller (controlling function)", id.status);
    const ctrl = decodeIdentifyController(id.data!);
    if ((ctrl.oacs & OACS_HMLMS) === 0) {
      throw new ControlError(
        "failed-precondition",
        "the controlling function lacks Host Managed Live Migration (Identify Controller OACS bit 11)",
      );
    }
    return new Tp4159Commands(channel, ctrl.cntlid);
  }

  private async run(what: string, cmd: AdminCommand): Promise<AdminReply> {
    const r = await this.channel.submit(cmd);
    checkStatus(what, r.status);
    return r;
  }

  /** The Secondary Controller List (Identify CNS 15h): every controlled controller of this PF. */
  async secondaryControllers(): Promise<SecondaryControllerEntry[]> {
    const r = await this.run("Identify Secondary Controller List", secondaryControllerListSqe());
    return decodeSecondaryControllerList(r.data!).filter((e) => e.scid !== this.controllingCntlid);
  }

  /** Migration Send SEL 0; resolves once the controller reports the suspend complete. */
  async suspend(cntlid: number, stype: number, dudmq: boolean): Promise<void> {
    await this.run(
      `Migration Send Suspend STYPE ${stype}${dudmq ? " DUDMQ" : ""} (CNTLID ${cntlid})`,
      migrationSendSuspendSqe(cntlid, stype, dudmq),
    );
  }

  /** Migration Send SEL 1. */
  async resume(cntlid: number): Promise<void> {
    await this.run(`Migration Send Resume (CNTLID ${cntlid})`, migrationSendResumeSqe(cntlid));
  }

  private async receive(
    cntlid: number,
    sel: StateIndexes,
    offset: number,
    bytes: number,
  ): Promise<Uint8Array> {
    const r = await this.run(
      `Migration Receive Get Controller State (CNTLID ${cntlid}, offset ${offset})`,
      getControllerStateSqe(cntlid, resolve(sel), offset, bytes),
    );
    return r.data!;
  }

  /** Size of the state Get Controller State returns now (reads the 48-byte header), bytes. */
  async controllerStateBytes(cntlid: number, sel: StateIndexes): Promise<number> {
    const head = await this.receive(cntlid, sel, 0, CONTROLLER_STATE_HEADER_BYTES);
    const size = controllerStateBytes(decodeControllerStateHeader(head));
    if (!size.ok)
      throw new ControlError("internal", `controller ${cntlid} reports a state of ${size.detail}`);
    return size.value;
  }

  /** The whole controller state of a suspended controller (header + NVMe state + vendor section). */
  async getState(cntlid: number, sel: StateIndexes): Promise<Uint8Array> {
    const whole = await receiveWholeControllerState((offset, bytes) =>
      this.receive(cntlid, sel, offset, bytes),
    );
    if (!whole.ok)
      throw new ControlError("internal", `controller ${cntlid} reports a state of ${whole.detail}`);
    return whole.value;
  }

  /**
   * Writes a whole state into a suspended controller in SEQIND-sequenced chunks; the controller applies
   * it only after the last chunk validated (a refused state changes nothing).
   */
  async setState(cntlid: number, sel: StateIndexes, state: Uint8Array): Promise<void> {
    if (state.byteLength % 4 !== 0) {
      throw new ControlError(
        "invalid-argument",
        `controller state of ${state.byteLength} bytes is not a whole number of dwords`,
      );
    }
    const indexes = resolve(sel);
    await sendWholeControllerState(state, async (seqind, offset, part) => {
      await this.run(
        `Migration Send Set Controller State (CNTLID ${cntlid}, offset ${offset})`,
        setControllerStateSqe(cntlid, indexes, seqind, offset, part),
      );
    });
  }
}
