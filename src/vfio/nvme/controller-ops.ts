/**
 * The admin commands a variant driver sends to the controlling function on behalf of one controlled
 * controller, per profile: TP4159 (Migration Send / Receive by CNTLID) or the Intel vendor profile
 * (0xC4 / C8 / CC / D2 / D5 by VF index). Each method is one or a few real SQEs on the PF admin queue.
 *
 * The TP4159 SQEs themselves and the windowed whole-state transfer are built in one place, below,
 * with every field a parameter (STYPE, DUDMQ, CSVI, CSUUIDI): this driver uses its fixed profile
 * (STYPE 1, no DUDMQ, CSVI = CSUUIDI = 1), the host agent (`src/host/agent/tp4159-commands.ts`)
 * whatever its API was asked for.
 */
import type { CodecResult } from "../../nvme/codec.ts";
import { controllerStateBytes, decodeControllerStateHeader } from "../../nvme/controller-state.ts";
import { Cns } from "../../nvme/identifiers.ts";
import { decodeIdentifyController, OACS_HMLMS } from "../../nvme/identify-controller.ts";
import {
  encodeIntelMigration,
  INTEL_LM_MAX_STATE_BYTES,
  intelLiveMigrationSupported,
} from "../../nvme/intel-migration.ts";
import {
  encodeMigrationReceive,
  encodeMigrationSend,
  MigrationReceiveSel,
  MigrationSendSel,
  migrationReceiveNumd,
  migrationSendNumd,
  SuspendType,
  sequenceIndicatorFor,
} from "../../nvme/migration-commands.ts";
import { AdminOpcode } from "../../nvme/opcodes.ts";
import { decodeSecondaryControllerList } from "../../nvme/secondary-controller-list.ts";
import { GenericStatus, Status, statusCode, statusName } from "../../nvme/status.ts";
import type { AdminChannel, AdminCommand } from "./admin-channel.ts";

export type MigrationProfile = "tp4159" | "intel";

/** Bytes per Migration Receive / Send command (within the PF's MDTS of 512 KiB). */
export const STATE_CHUNK_BYTES = 256 * 1024;
/** First Get Controller State read: header and, usually, everything (bytes). */
const FIRST_READ_BYTES = 16 * 1024;

// ---- TP4159 SQEs naming a controlled controller by CNTLID (this driver and the host agent) --------

/** Controller state selection of Migration Send / Receive: 1-based indexes into the CNS 20h lists. */
export interface StateIndexes {
  /** Controller State Version Index. */
  csvi: number;
  /** Controller State UUID Index. */
  csuuidi: number;
}

/** The variant driver's selection: the first version and UUID listed (nvmig's vendor section). */
export const VARIANT_STATE_INDEXES: StateIndexes = { csvi: 1, csuuidi: 1 };

/** Identify Controller (CNS 01h): OACS.HMLMS, the controlling controller's own CNTLID. */
export function identifyControllerSqe(): AdminCommand {
  return { opc: AdminOpcode.Identify, cdw10: Cns.IdentifyController, dataInBytes: 4096 };
}

/** Identify Secondary Controller List (CNS 15h): CNTLID (SCID) ↔ VFN of every controlled controller. */
export function secondaryControllerListSqe(): AdminCommand {
  return { opc: AdminOpcode.Identify, cdw10: Cns.SecondaryControllerList, dataInBytes: 4096 };
}

/** Migration Send SEL 0 (Suspend) with Suspend Type `stype`; `dudmq` also deletes the target's UDMQs. */
export function migrationSendSuspendSqe(cntlid: number, stype: number, dudmq: boolean): AdminCommand {
  return {
    opc: AdminOpcode.MigrationSend,
    ...encodeMigrationSend({ sel: MigrationSendSel.Suspend, cntlid, stype, dudmq, uidx: 0 }),
  };
}

/** Migration Send SEL 1 (Resume). */
export function migrationSendResumeSqe(cntlid: number): AdminCommand {
  return {
    opc: AdminOpcode.MigrationSend,
    ...encodeMigrationSend({ sel: MigrationSendSel.Resume, cntlid, uidx: 0 }),
  };
}

/** Migration Receive SEL 0 (Get Controller State): `bytes` (a multiple of 4) from byte `offset`. */
export function getControllerStateSqe(
  cntlid: number,
  sel: StateIndexes,
  offset: number,
  bytes: number,
): AdminCommand {
  return {
    opc: AdminOpcode.MigrationReceive,
    ...encodeMigrationReceive({
      sel: MigrationReceiveSel.GetControllerState,
      csvi: sel.csvi,
      cntlid,
      csuuidi: sel.csuuidi,
      csuidxp: 0,
      offset,
      uidx: 0,
      numd: migrationReceiveNumd(bytes),
    }),
    dataInBytes: bytes,
  };
}

/** Migration Send SEL 2 (Set Controller State): one chunk `part` at byte `offset`, SEQIND `seqind`. */
export function setControllerStateSqe(
  cntlid: number,
  sel: StateIndexes,
  seqind: number,
  offset: number,
  part: Uint8Array,
): AdminCommand {
  return {
    opc: AdminOpcode.MigrationSend,
    ...encodeMigrationSend({
      sel: MigrationSendSel.SetControllerState,
      seqind,
      cntlid,
      csvi: sel.csvi,
      csuuidi: sel.csuuidi,
      offset,
      uidx: 0,
      numd: migrationSendNumd(part.byteLength),
    }),
    ...(part.byteLength > 0 ? { dataOut: part } : {}),
  };
}

/**
 * A whole controller state through offset-windowed Get Controller State reads (`receive(offset, bytes)`,
 * one command each): a first window of 16 KiB (the header and, usually, everything), then windows of
 * `STATE_CHUNK_BYTES` up to the size the header gives.
 */
export async function receiveWholeControllerState(
  receive: (offset: number, bytes: number) => Promise<Uint8Array>,
): Promise<CodecResult<Uint8Array, "too-large">> {
  const first = await receive(0, FIRST_READ_BYTES);
  const size = controllerStateBytes(decodeControllerStateHeader(first));
  if (!size.ok) return size;
  const total = size.value;
  if (total <= first.byteLength) return { ok: true, value: first.slice(0, total) };
  const out = new Uint8Array(total);
  out.set(first);
  for (let at = first.byteLength; at < total; at += STATE_CHUNK_BYTES) {
    const n = Math.min(STATE_CHUNK_BYTES, total - at);
    const part = await receive(at, Math.ceil(n / 4) * 4);
    out.set(part.subarray(0, n), at);
  }
  return { ok: true, value: out };
}

/**
 * A whole controller state through Set Controller State chunks of `STATE_CHUNK_BYTES` (`send(seqind,
 * offset, part)`, one command each, in order); the controller applies it after the last one validated.
 */
export async function sendWholeControllerState(
  state: Uint8Array,
  send: (seqind: number, offset: number, part: Uint8Array) => Promise<void>,
): Promise<void> {
  const chunks = Math.max(1, Math.ceil(state.byteLength / STATE_CHUNK_BYTES));
  for (let i = 0; i < chunks; i++) {
    const at = i * STATE_CHUNK_BYTES;
    await send(
      sequenceIndicatorFor(i, chunks),
      at,
      state.subarray(at, Math.min(state.byteLength, at + STATE_CHUNK_BYTES)),
    );
  }
}

// ---- the variant driver's operations, per profile --------------------------------------------------

export class ControllerOpError extends Error {
  constructor(
    message: string,
    /** NVMe status of the failing command (0 when not a command failure). */
    readonly status: number,
  ) {
    super(message);
    this.name = "ControllerOpError";
  }
}

export class ControllerOps {
  private constructor(
    private readonly channel: AdminChannel,
    readonly profile: MigrationProfile,
    /** The controlled controller's CNTLID (from the Secondary Controller List). */
    readonly cntlid: number,
    readonly vfn: number,
  ) {}

  /**
   * Checks the controlling function supports the profile (OACS.HMLMS, or Identify byte 3072 = 1) and
   * finds the CNTLID of VF `vfn` in the Secondary Controller List (CNS 15h) — never the PF's own CNTLID.
   */
  static async open(channel: AdminChannel, vfn: number, profile: MigrationProfile): Promise<ControllerOps> {
    const id = await channel.submit(identifyControllerSqe());
    if (id.status !== 0 || id.data === undefined)
      throw new ControllerOpError(`Identify Controller: ${statusName(id.status)}`, id.status);
    const ctrl = decodeIdentifyController(id.data);
    if (profile === "tp4159" && (ctrl.oacs & OACS_HMLMS) === 0)
      throw new ControllerOpError("controlling function lacks Host Managed Live Migration (OACS.HMLMS)", 0);
    if (profile === "intel" && !intelLiveMigrationSupported(ctrl.vs))
      throw new ControllerOpError(
        "controlling function lacks the Intel live-migration profile (Identify byte 3072)",
        0,
      );
    const list = await channel.submit(secondaryControllerListSqe());
    if (list.status !== 0 || list.data === undefined)
      throw new ControllerOpError(`Secondary Controller List: ${statusName(list.status)}`, list.status);
    const entry = decodeSecondaryControllerList(list.data).find((e) => e.vfn === vfn);
    if (entry === undefined) throw new ControllerOpError(`no secondary controller with VFN ${vfn}`, 0);
    if (entry.scid === ctrl.cntlid)
      throw new ControllerOpError("secondary list names the controlling controller itself", 0);
    return new ControllerOps(channel, profile, entry.scid, vfn);
  }

  private async ok(what: string, cmd: AdminCommand) {
    const r = await this.channel.submit(cmd);
    if (r.status !== 0)
      throw new ControllerOpError(`${what} (CNTLID ${this.cntlid}): ${statusName(r.status)}`, r.status);
    return r;
  }

  async suspend(): Promise<void> {
    if (this.profile === "intel") {
      await this.ok("Intel suspend", {
        opc: AdminOpcode.IntelSuspend,
        ...encodeIntelMigration({ vfIndex: this.vfn }),
      });
      return;
    }
    await this.ok("Migration Send Suspend", migrationSendSuspendSqe(this.cntlid, SuspendType.Suspend, false));
  }

  /** Resumes; `ifSuspended` tolerates a controller that is already running. */
  async resume(ifSuspended = false): Promise<void> {
    const cmd: AdminCommand =
      this.profile === "intel"
        ? { opc: AdminOpcode.IntelResume, ...encodeIntelMigration({ vfIndex: this.vfn }) }
        : migrationSendResumeSqe(this.cntlid);
    const r = await this.channel.submit(cmd);
    if (r.status === 0) return;
    if (ifSuspended && (r.status & 0x7ff) === (Status.ControllerNotSuspended & 0x7ff)) return;
    throw new ControllerOpError(`Resume (CNTLID ${this.cntlid}): ${statusName(r.status)}`, r.status);
  }

  /** Reads the whole controller state of the (suspended) controlled controller. */
  async getState(): Promise<Uint8Array> {
    if (this.profile === "intel") {
      const q = await this.ok("Intel query size", {
        opc: AdminOpcode.IntelQueryDataSize,
        ...encodeIntelMigration({ vfIndex: this.vfn }),
      });
      const size = q.dw0;
      if (size === 0 || size > INTEL_LM_MAX_STATE_BYTES)
        throw new ControllerOpError(`Intel state size ${size} out of range`, 0);
      const r = await this.ok("Intel save", {
        opc: AdminOpcode.IntelSaveData,
        ...encodeIntelMigration({ vfIndex: this.vfn }),
        dataInBytes: size,
      });
      return r.data!;
    }
    const whole = await receiveWholeControllerState((offset, bytes) => this.receive(offset, bytes));
    if (!whole.ok) throw new ControllerOpError(`controller state of ${whole.detail}`, 0);
    return whole.value;
  }

  private async receive(offset: number, bytes: number): Promise<Uint8Array> {
    const r = await this.ok(
      "Migration Receive Get Controller State",
      getControllerStateSqe(this.cntlid, VARIANT_STATE_INDEXES, offset, bytes),
    );
    return r.data!;
  }

  /** Writes (and so validates and loads) a whole controller state into the suspended controller. */
  async setState(blob: Uint8Array): Promise<void> {
    if (this.profile === "intel") {
      await this.ok("Intel load", {
        opc: AdminOpcode.IntelLoadData,
        ...encodeIntelMigration({ vfIndex: this.vfn, sizeBytes: blob.byteLength }),
        dataOut: blob,
      });
      return;
    }
    await sendWholeControllerState(blob, async (seqind, offset, part) => {
      await this.ok(
        "Migration Send Set Controller State",
        setControllerStateSqe(this.cntlid, VARIANT_STATE_INDEXES, seqind, offset, part),
      );
    });
  }

  /** True when `e` is the controller's "Controller Suspended" answer. */
  static isControllerSuspended(e: unknown): boolean {
    return e instanceof ControllerOpError && statusCode(e.status) === GenericStatus.ControllerSuspended;
  }
}
