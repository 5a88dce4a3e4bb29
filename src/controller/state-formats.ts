/**
 * Controller state formats this implementation produces and accepts (TP4159, Identify CNS 20h).
 *
 * - NVMe-defined format: the NVMe Controller State structure, VER = `NVME_CONTROLLER_STATE_VERSION`,
 *   selected by CSVI = 1 (the first entry of the list).
 * - nvmig vendor format: the vendor-specific section that carries everything else a controller needs to
 *   continue on another host, selected by CSUUIDI = 1 (the first UUID of the list).
 */
export const NVME_CONTROLLER_STATE_VERSION = 0;

/** nvmig vendor-specific controller state format: 6e766d69-672d-7374-6174-652d76310000 ("nvmig-state-v1"). */
export const NVMIG_STATE_FORMAT_UUID = new Uint8Array([
  0x6e, 0x76, 0x6d, 0x69, 0x67, 0x2d, 0x73, 0x74, 0x61, 0x74, 0x65, 0x2d, 0x76, 0x31, 0x00, 0x00,
]);
