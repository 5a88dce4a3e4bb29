/**
 * Get Log Page (02h) — NVMe Base 2.1 §5.2.12. CDW10: LID bits 7:0, LSP bits 14:8, RAE bit 15,
 * NUMDL bits 31:16; CDW11: NUMDU bits 15:0 (NUMD is 0's based, in dwords); CDW12/13: LPOL/LPOU, the
 * byte offset into the page (dword aligned). Bytes past the end of a page read as zero; an offset past
 * the end → Invalid Field. RAE = 0 on a page tied to an asynchronous event clears that event.
 */
import { LogPageId } from "../../nvme/identifiers.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import {
  changedNamespaceListPage,
  commandsSupportedAndEffectsPage,
  errorInformationPage,
  firmwareSlotPage,
  smartHealthPage,
} from "./log-pages.ts";

export function getLogPage(c: NvmeController): number {
  const cdw10 = c.sqe.getUint32(40, true);
  const cdw11 = c.sqe.getUint32(44, true);
  const lid = cdw10 & 0xff;
  const rae = (cdw10 & (1 << 15)) !== 0;
  const numd = (cdw11 & 0xffff) * 0x10000 + (cdw10 >>> 16) + 1;
  const offset = c.sqe.getUint32(48, true) + c.sqe.getUint32(52, true) * 0x1_0000_0000;
  const nsid = c.sqe.getUint32(4, true);
  if (offset % 4 !== 0) return Status.InvalidField;
  const lengthBytes = numd * 4;
  if (lengthBytes > c.mdtsBytes) return Status.InvalidField;
  let page: Uint8Array;
  switch (lid) {
    case LogPageId.ErrorInformation:
      page = errorInformationPage(c);
      break;
    case LogPageId.SmartHealthInformation:
      if (nsid !== 0 && nsid !== 0xffffffff) return Status.InvalidField; // LPA.SMART-per-namespace = 0
      page = smartHealthPage(c);
      break;
    case LogPageId.FirmwareSlotInformation:
      page = firmwareSlotPage(c);
      break;
    case LogPageId.ChangedNamespaceList:
      page = changedNamespaceListPage(c, rae);
      break;
    case LogPageId.CommandsSupportedAndEffects:
      page = commandsSupportedAndEffectsPage(c);
      break;
    default:
      return Status.InvalidLogPage;
  }
  if (offset >= page.byteLength) return Status.InvalidField;
  const out = new Uint8Array(lengthBytes);
  out.set(page.subarray(offset, Math.min(page.byteLength, offset + lengthBytes)));
  const st = c.transferToHost(out);
  if (st === Status.Success) c.asyncEvents.logPageRead(lid, rae);
  return st;
}
