/**
 * The admin commands a variant driver sends to the controlling function on behalf of one controlled
 * controller, per profile: TP4159 (Migration Send / Receive by CNTLID) or the Intel vendor profile
 * (0xC4 / C8 / CC / D2 / D5 by VF index). Each method is one or a few real SQEs on the PF admin queue.
 */
import { decodeControllerStateHeader } from "../../nvme/controller-state.ts";
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
  migrationReceiveNumd,
  migrationSendNumd,
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
    const id = await channel.submit({
      opc: AdminOpcode.Identify,
      cdw10: Cns.IdentifyController,
      dataInBytes: 4096,
    });
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
    const list = await channel.submit({
      opc: AdminOpcode.Identify,
      cdw10: Cns.SecondaryControllerList,
      dataInBytes: 4096,
    });
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
    await this.ok("Migration Send Suspend", {
      opc: AdminOpcode.MigrationSend,
      ...encodeMigrationSend({ sel: 0, cntlid: this.cntlid, stype: 1, dudmq: false, uidx: 0 }),
    });
  }

  /** Resumes; `ifSuspended` tolerates a controller that is already running. */
  async resume(ifSuspended = false): Promise<void> {
    const cmd: AdminCommand =
      this.profile === "intel"
        ? { opc: AdminOpcode.IntelResume, ...encodeIntelMigration({ vfIndex: this.vfn }) }
        : {
            opc: AdminOpcode.MigrationSend,
            ...encodeMigrationSend({ sel: 1, cntlid: this.cntlid, uidx: 0 }),
          };
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
    const first = await this.receive(0, FIRST_READ_BYTES);
    const h = decodeControllerStateHeader(first);
    const total = 48 + 4 * Number(h.nvmecss + h.vss);
    if (total <= first.byteLength) return first.slice(0, total);
    const out = new Uint8Array(total);
    out.set(first);
    for (let at = first.byteLength; at < total; at += STATE_CHUNK_BYTES) {
      const n = Math.min(STATE_CHUNK_BYTES, total - at);
      const part = await this.receive(at, Math.ceil(n / 4) * 4);
      out.set(part.subarray(0, n), at);
    }
    return out;
  }

  private async receive(offset: number, bytes: number): Promise<Uint8Array> {
    const r = await this.ok("Migration Receive Get Controller State", {
      opc: AdminOpcode.MigrationReceive,
      ...encodeMigrationReceive({
        sel: 0,
        csvi: 1,
        cntlid: this.cntlid,
        csuuidi: 1,
        csuidxp: 0,
        offset,
        uidx: 0,
        numd: migrationReceiveNumd(bytes),
      }),
      dataInBytes: bytes,
    });
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
    const chunks = Math.max(1, Math.ceil(blob.byteLength / STATE_CHUNK_BYTES));
    for (let i = 0; i < chunks; i++) {
      const at = i * STATE_CHUNK_BYTES;
      const part = blob.subarray(at, Math.min(blob.byteLength, at + STATE_CHUNK_BYTES));
      const seqind = sequenceIndicatorFor(i, chunks);
      await this.ok("Migration Send Set Controller State", {
        opc: AdminOpcode.MigrationSend,
        ...encodeMigrationSend({
          sel: 2,
          seqind,
          cntlid: this.cntlid,
          csvi: 1,
          csuuidi: 1,
          offset: at,
          uidx: 0,
          numd: migrationSendNumd(part.byteLength),
        }),
        dataOut: part,
      });
    }
  }

  /** True when `e` is the controller's "Controller Suspended" answer. */
  static isControllerSuspended(e: unknown): boolean {
    return e instanceof ControllerOpError && statusCode(e.status) === GenericStatus.ControllerSuspended;
  }
}
