/**
 * The contents of each log page this controller returns (NVMe Base 2.1 §5.2.12.1), built from live state.
 */

import { encodeChangedNamespaceList } from "../../nvme/log-changed-namespace-list.ts";
import {
  CSE_CSUPP,
  CSE_LBCC,
  encodeCommandsSupportedEffects,
} from "../../nvme/log-commands-supported-effects.ts";
import { encodeErrorInformationLog, makeErrorInformationEntry } from "../../nvme/log-error-information.ts";
import { afi, encodeFirmwareSlotInformation } from "../../nvme/log-firmware-slot.ts";
import { encodeSmartHealth, makeSmartHealth } from "../../nvme/log-smart-health.ts";
import { NvmOpcode } from "../../nvme/opcodes.ts";
import { ELPE } from "../async-events.ts";
import type { NvmeController } from "../controller.ts";
import { supportedAdminOpcodes } from "./dispatch.ts";

/** Composite temperature reported, kelvin (≈ 35 °C). */
const COMPOSITE_TEMPERATURE_K = 308;

export function errorInformationPage(c: NvmeController): Uint8Array {
  const entries = c.asyncEvents.errorLog.map((e) =>
    makeErrorInformationEntry({
      errorCount: e.errorCount,
      sqid: e.sqid,
      cid: e.cid,
      status: e.status,
      pel: 0xffff,
      nsid: e.nsid,
    }),
  );
  return encodeErrorInformationLog(entries, ELPE + 1);
}

/** Data units are thousands of 512-byte units, rounded up (NVMe Base §5.2.12.1.3). */
function dataUnits(bytes: number): bigint {
  return BigInt(Math.ceil(bytes / 512 / 1000));
}

export function smartHealthPage(c: NvmeController): Uint8Array {
  const s = c.stats;
  return encodeSmartHealth(
    makeSmartHealth({
      ctemp: COMPOSITE_TEMPERATURE_K,
      avsp: 100,
      avspt: 10,
      dur: dataUnits(s.dataUnitsReadBytes),
      duw: dataUnits(s.dataUnitsWrittenBytes),
      hrc: BigInt(s.hostReadCommands),
      hwc: BigInt(s.hostWriteCommands),
      pwrc: 1n,
      poh: BigInt(Math.floor((Date.now() - s.powerOnSinceMs) / 3_600_000)),
      neile: c.asyncEvents.errorCount,
    }),
  );
}

export function firmwareSlotPage(c: NvmeController): Uint8Array {
  return encodeFirmwareSlotInformation({ afi: afi(1), frs: [c.subsystem.identity.firmware] });
}

export function changedNamespaceListPage(c: NvmeController, rae: boolean): Uint8Array {
  const page = encodeChangedNamespaceList([...c.changedNamespaces].sort((a, b) => a - b));
  if (!rae) c.changedNamespaces.clear();
  return page;
}

export function commandsSupportedAndEffectsPage(c: NvmeController): Uint8Array {
  const acs: number[] = new Array(256).fill(0);
  for (const op of supportedAdminOpcodes(c)) acs[op] = CSE_CSUPP;
  const iocs: number[] = new Array(256).fill(0);
  iocs[NvmOpcode.Flush] = CSE_CSUPP;
  iocs[NvmOpcode.Read] = CSE_CSUPP;
  iocs[NvmOpcode.Compare] = CSE_CSUPP;
  iocs[NvmOpcode.Write] = CSE_CSUPP | CSE_LBCC;
  iocs[NvmOpcode.WriteZeroes] = CSE_CSUPP | CSE_LBCC;
  iocs[NvmOpcode.DatasetManagement] = CSE_CSUPP | CSE_LBCC;
  return encodeCommandsSupportedEffects({ acs, iocs });
}
