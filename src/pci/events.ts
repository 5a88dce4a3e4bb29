/**
 * Named events the PCI function model reports for guest/peer mistakes and notable transitions.
 * They are never thrown; a sink (usually a logger) receives them. Each name is stable.
 */
export type PciEvent =
  /** A config-space access outside 0..4095, of an unsupported size, or with a non-integer value. */
  | { name: "pci.config.bad-access"; offset: number; sizeBytes: number; write: boolean }
  /** A write of D1/D2 (not supported) to PMCSR PowerState; the write was discarded. */
  | { name: "pci.pm.unsupported-power-state"; requested: number }
  /** A NumVFs write above TotalVFs; the write was discarded. */
  | { name: "pci.sriov.num-vfs-out-of-range"; requested: number; totalVfs: number }
  /** A write to a field that is frozen while VF Enable is set; the write was discarded. */
  | { name: "pci.sriov.write-ignored-vf-enabled"; field: string }
  /** A System Page Size write that is not exactly one supported page size; the write was discarded. */
  | { name: "pci.sriov.bad-system-page-size"; requested: number; supported: number }
  /** An MSI-X table / PBA access outside the region, straddling it, or of an unsupported size. */
  | {
      name: "pci.msix.bad-access";
      region: "table" | "pba";
      offset: number;
      sizeBytes: number;
      write: boolean;
    }
  /** `signal()` of a vector number the table does not have. */
  | { name: "pci.msix.bad-vector"; vector: number }
  /** An MSI-X message that could not be sent because Bus Master Enable is clear (dropped, as on hardware). */
  | { name: "pci.msix.dropped-bus-master-off"; vector: number }
  /** A Function Level Reset (Initiate FLR or programmatic). */
  | { name: "pci.flr" };

/** Receives PCI events. Default everywhere: ignore them. */
export type PciEventSink = (event: PciEvent) => void;

export const ignoreEvents: PciEventSink = () => {};
