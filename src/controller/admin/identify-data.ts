/**
 * The contents of each Identify data structure this controller returns, built from its live state.
 */
import {
  CMIC_MULTI_CONTROLLER,
  CMIC_SRIOV_VF,
  encodeIdentifyController,
  entrySizes,
  FRMW_SLOT1_READ_ONLY,
  LPA_COMMANDS_SUPPORTED_AND_EFFECTS,
  LPA_EXTENDED_DATA,
  makeIdentifyController,
  makePowerStateDescriptor,
  OACS_DBBUF,
  OACS_HMLMS,
  OACS_VMS,
  OAES_NAMESPACE_ATTRIBUTE_NOTICES,
  ONCS_COMPARE,
  ONCS_DATASET_MANAGEMENT,
  ONCS_WRITE_ZEROES,
  ONCS_WRITE_ZEROES_DEALLOCATE,
  SGLS_SUPPORTED_BYTE_ALIGNED,
  TRATTR_THMCS,
  TRATTR_TUDCS,
  VWC_FLUSH_BROADCAST_SUPPORTED,
  VWC_PRESENT,
} from "../../nvme/identify-controller.ts";
import {
  DLFEAT_READ_ZEROES,
  DLFEAT_WRITE_ZEROES_DEAC,
  encodeFlbas,
  encodeIdentifyNamespace,
  lbadsForBytes,
  makeIdentifyNamespace,
  NMIC_SHARED,
} from "../../nvme/identify-namespace.ts";
import { activeNamespaceIdList, encodeNamespaceList } from "../../nvme/namespace-list.ts";
import { encodeNsIdDescriptors, Nidt } from "../../nvme/ns-id-descriptors.ts";
import { encodePrimaryControllerCapabilities } from "../../nvme/primary-controller-capabilities.ts";
import { encodeSecondaryControllerList } from "../../nvme/secondary-controller-list.ts";
import { CQE_SIZE_LOG2, SQE_SIZE_LOG2 } from "../../nvme/sqe.ts";
import { Status } from "../../nvme/status.ts";
import { encodeSupportedControllerStateFormats } from "../../nvme/supported-controller-state-formats.ts";
import { AERL, ELPE } from "../async-events.ts";
import type { NvmeController } from "../controller.ts";
import { NVME_CONTROLLER_STATE_VERSION, NVMIG_STATE_FORMAT_UUID } from "../state-formats.ts";

/** Identify Controller byte 3072 (vendor specific byte 0): 1 = Intel live-migration profile supported. */
export const INTEL_PROFILE_VS_BYTE = 1;

/** Highest NSID a controller reports in NN. */
export function maxNsid(c: NvmeController): number {
  let n = 1;
  for (const id of c.subsystem.namespaces.keys()) n = Math.max(n, id);
  return n;
}

export function identifyControllerData(c: NvmeController): Uint8Array {
  const id = c.subsystem.identity;
  const vs = new Uint8Array(1024);
  if (c.primary) vs[0] = INTEL_PROFILE_VS_BYTE;
  return encodeIdentifyController(
    makeIdentifyController({
      vid: id.vid,
      ssvid: id.ssvid,
      sn: id.serial,
      mn: id.model,
      fr: id.firmware,
      rab: 6,
      ieee: id.ieee,
      cmic: CMIC_MULTI_CONTROLLER | (c.primary ? 0 : CMIC_SRIOV_VF),
      mdts: c.mdts,
      cntlid: c.cntlid,
      ver: c.vsValue,
      oaes: OAES_NAMESPACE_ATTRIBUTE_NOTICES,
      cntrltype: 1,
      oacs: OACS_DBBUF | (c.primary ? OACS_VMS | OACS_HMLMS : 0),
      acl: 3,
      aerl: AERL,
      frmw: FRMW_SLOT1_READ_ONLY | (1 << 1),
      lpa: LPA_COMMANDS_SUPPORTED_AND_EFFECTS | LPA_EXTENDED_DATA,
      elpe: ELPE,
      npss: 0,
      wctemp: 0x157,
      cctemp: 0x175,
      sqes: entrySizes(SQE_SIZE_LOG2, SQE_SIZE_LOG2),
      cqes: entrySizes(CQE_SIZE_LOG2, CQE_SIZE_LOG2),
      maxcmd: 0,
      nn: maxNsid(c),
      oncs: ONCS_COMPARE | ONCS_DATASET_MANAGEMENT | ONCS_WRITE_ZEROES | ONCS_WRITE_ZEROES_DEALLOCATE,
      vwc: c.vwcPresent ? VWC_PRESENT | VWC_FLUSH_BROADCAST_SUPPORTED : 0,
      sgls: SGLS_SUPPORTED_BYTE_ALIGNED,
      subnqn: id.subnqn,
      // TP4159 live-migration capabilities (primary only).
      cmmrtd: c.primary ? 16 : 0,
      nmmrtd: c.primary ? 16 * (c.subsystem.secondaries.length + 1) : 0,
      minmrtg: c.primary ? 12 : 0,
      maxmrtg: c.primary ? 21 : 0,
      trattr: c.primary ? TRATTR_THMCS | TRATTR_TUDCS : 0,
      mcudmq: c.primary ? c.subsystem.secondaries.length : 0,
      mnsudmq: c.primary ? c.subsystem.secondaries.length : 0,
      mcmr: c.primary ? 1 : 0,
      nmcmr: c.primary ? c.subsystem.secondaries.length : 0,
      mcdqpc: c.primary ? 1 : 0,
      psd: [makePowerStateDescriptor({ mp: 2500, enlat: 10, exlat: 10 })],
      vs,
    }),
  );
}

export function identifyNamespaceData(c: NvmeController, nsid: number): Uint8Array | number {
  if (nsid === 0 || nsid === 0xffffffff || nsid > maxNsid(c)) return Status.InvalidNamespace;
  const ns = c.subsystem.namespaces.get(nsid);
  if (ns === undefined || !c.attachedNamespaces.has(nsid)) return new Uint8Array(4096); // inactive NSID
  const formats = [
    { ms: 0, lbads: lbadsForBytes(512), rp: 0 },
    { ms: 0, lbads: lbadsForBytes(4096), rp: 0 },
  ];
  return encodeIdentifyNamespace(
    makeIdentifyNamespace({
      nsze: ns.lbaCount,
      ncap: ns.lbaCount,
      nuse: ns.lbaCount,
      nlbaf: formats.length - 1,
      flbas: encodeFlbas(ns.lbaBytes === 512 ? 0 : 1),
      nmic: NMIC_SHARED,
      dlfeat: DLFEAT_READ_ZEROES | DLFEAT_WRITE_ZEROES_DEAC,
      nguid: ns.nguid,
      eui64: ns.eui64,
      lbaf: formats,
    }),
  );
}

export function activeNamespaceList(c: NvmeController, afterNsid: number): Uint8Array {
  return encodeNamespaceList(activeNamespaceIdList(c.attachedNamespaces, afterNsid));
}

export function namespaceIdDescriptors(c: NvmeController, nsid: number): Uint8Array | number {
  const ns = c.subsystem.namespaces.get(nsid);
  if (ns === undefined || !c.attachedNamespaces.has(nsid)) return Status.InvalidNamespace;
  return encodeNsIdDescriptors([
    { nidt: Nidt.Eui64, nid: ns.eui64 },
    { nidt: Nidt.Nguid, nid: ns.nguid },
    { nidt: Nidt.Uuid, nid: ns.uuid },
  ]);
}

export function primaryControllerCapabilities(c: NvmeController): Uint8Array {
  const s = c.subsystem;
  const a = s.flexibleAssigned();
  return encodePrimaryControllerCapabilities({
    cntlid: c.cntlid,
    portid: 0,
    crt: 0x3, // VQ and VI resources
    vqfrt: s.virt.vqFlexible,
    vqrfa: a.vq,
    vqrfap: s.primaryFlexibleVq,
    vqprt: s.virt.vqPrivate,
    vqfrsm: s.virt.vqMaxPerSecondary,
    vqgran: 1,
    vifrt: s.virt.viFlexible,
    virfa: a.vi,
    virfap: s.primaryFlexibleVi,
    viprt: s.virt.viPrivate,
    vifrsm: s.virt.viMaxPerSecondary,
    vigran: 1,
  });
}

export function secondaryControllerList(c: NvmeController, fromCntlid: number): Uint8Array {
  const entries = c.subsystem.secondaries
    .filter((s) => s.scid >= fromCntlid)
    .slice(0, 127)
    .map((s) => ({
      scid: s.scid,
      pcid: c.cntlid,
      scs: s.online ? 1 : 0,
      vfn: s.vfn,
      nvq: s.nvq,
      nvi: s.nvi,
    }));
  return encodeSecondaryControllerList(entries);
}

export function supportedControllerStateFormats(): Uint8Array {
  const out = new Uint8Array(4096);
  out.set(
    encodeSupportedControllerStateFormats({
      versions: [NVME_CONTROLLER_STATE_VERSION],
      uuids: [NVMIG_STATE_FORMAT_UUID],
    }),
  );
  return out;
}
