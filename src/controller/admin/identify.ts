/**
 * Identify (06h) — NVMe Base 2.1 §5.2.13. CDW10: CNS bits 7:0, CNTID bits 31:16; NSID in the SQE.
 * Every data structure is 4096 bytes, sent through PRP1/PRP2. The structures' contents are built in
 * `identify-data.ts`; this file decodes the command and checks the rules per CNS.
 */
import { Cns } from "../../nvme/identifiers.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import {
  activeNamespaceList,
  identifyControllerData,
  identifyNamespaceData,
  namespaceIdDescriptors,
  primaryControllerCapabilities,
  secondaryControllerList,
  supportedControllerStateFormats,
} from "./identify-data.ts";

export const IDENTIFY_BYTES = 4096;

export function identify(c: NvmeController): number {
  const cdw10 = c.sqe.getUint32(40, true);
  const cns = cdw10 & 0xff;
  const cntid = cdw10 >>> 16;
  const nsid = c.sqe.getUint32(4, true);
  let data: Uint8Array | number;
  switch (cns) {
    case Cns.IdentifyNamespace:
      data = identifyNamespaceData(c, nsid);
      break;
    case Cns.IdentifyController:
      data = identifyControllerData(c);
      break;
    case Cns.ActiveNamespaceIdList:
      data = nsid >= 0xfffffffe ? Status.InvalidNamespace : activeNamespaceList(c, nsid);
      break;
    case Cns.NamespaceIdentificationDescriptorList:
      data = namespaceIdDescriptors(c, nsid);
      break;
    case Cns.PrimaryControllerCapabilities:
      data = c.primary ? primaryControllerCapabilities(c) : Status.InvalidField;
      break;
    case Cns.SecondaryControllerList:
      data = c.primary ? secondaryControllerList(c, cntid) : Status.InvalidField;
      break;
    case Cns.SupportedControllerStateFormats:
      data = c.primary ? supportedControllerStateFormats() : Status.InvalidField;
      break;
    default:
      data = Status.InvalidField;
  }
  if (typeof data === "number") return data;
  return c.transferToHost(data);
}
