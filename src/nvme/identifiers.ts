/**
 * Identifier values used in admin commands: Identify CNS, log page identifiers, feature identifiers
 * (NVMe Base 2.1 Figures "CNS Values", "Log Page Identifiers", "Feature Identifiers"; TP4159 additions).
 */
export const Cns = {
  IdentifyNamespace: 0x00,
  IdentifyController: 0x01,
  ActiveNamespaceIdList: 0x02,
  NamespaceIdentificationDescriptorList: 0x03,
  PrimaryControllerCapabilities: 0x14,
  SecondaryControllerList: 0x15,
  /** TP4159: Supported Controller State Formats. */
  SupportedControllerStateFormats: 0x20,
} as const;

export const LogPageId = {
  ErrorInformation: 0x01,
  SmartHealthInformation: 0x02,
  FirmwareSlotInformation: 0x03,
  ChangedNamespaceList: 0x04,
  CommandsSupportedAndEffects: 0x05,
} as const;

export const FeatureId = {
  Arbitration: 0x01,
  PowerManagement: 0x02,
  TemperatureThreshold: 0x04,
  ErrorRecovery: 0x05,
  VolatileWriteCache: 0x06,
  NumberOfQueues: 0x07,
  InterruptCoalescing: 0x08,
  InterruptVectorConfiguration: 0x09,
  WriteAtomicityNormal: 0x0a,
  AsynchronousEventConfiguration: 0x0b,
  /** TP4159: Controller Data Queue. */
  ControllerDataQueue: 0x21,
} as const;

/** Select field (SEL) of Get Features CDW10 bits 10:8. */
export const FeatureSelect = { Current: 0, Default: 1, Saved: 2, SupportedCapabilities: 3 } as const;

/** Asynchronous Event Type (CQE DW0 bits 2:0 of an AER completion). */
export const AsyncEventType = {
  ErrorStatus: 0,
  SmartHealthStatus: 1,
  Notice: 2,
  ImmediateStatus: 3,
  IoCommandSpecific: 6,
  VendorSpecific: 7,
} as const;

/** Asynchronous Event Information for Error status events. */
export const AsyncEventInfoError = {
  WriteToInvalidDoorbellRegister: 0x00,
  InvalidDoorbellWriteValue: 0x01,
  DiagnosticFailure: 0x02,
  PersistentInternalError: 0x03,
  TransientInternalError: 0x04,
  FirmwareImageLoadError: 0x05,
} as const;

/** Asynchronous Event Information for Notice events. */
export const AsyncEventInfoNotice = {
  NamespaceAttributeChanged: 0x00,
  FirmwareActivationStarting: 0x01,
} as const;

/** Virtualization Management actions (CDW10 bits 3:0) and resource types (bits 10:8). */
export const VirtMgmtAction = {
  PrimaryControllerFlexibleAllocation: 0x1,
  SecondaryControllerOffline: 0x7,
  SecondaryControllerAssign: 0x8,
  SecondaryControllerOnline: 0x9,
} as const;
export const VirtMgmtResourceType = { VqResources: 0, ViResources: 1 } as const;
