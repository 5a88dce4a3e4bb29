/**
 * NVMe completion status (NVMe Base 2.1 §4.2.3, "Status Field").
 *
 * A status is carried here as the 15-bit Status Field of CQE DW3 bits 31:17:
 *   bits 7:0 SC (Status Code), bits 10:8 SCT (Status Code Type), bits 12:11 CRD,
 *   bit 13 M (More), bit 14 DNR (Do Not Retry).
 * `Status.Success` is 0. Build a failing status with `status(sct, sc, dnr)`.
 */
export const StatusCodeType = {
  Generic: 0,
  CommandSpecific: 1,
  MediaAndDataIntegrity: 2,
  PathRelated: 3,
  VendorSpecific: 7,
} as const;
export type StatusCodeType = (typeof StatusCodeType)[keyof typeof StatusCodeType];

/** Generic Command Status values (SCT 0h). */
export const GenericStatus = {
  SuccessfulCompletion: 0x00,
  InvalidCommandOpcode: 0x01,
  InvalidFieldInCommand: 0x02,
  CommandIdConflict: 0x03,
  DataTransferError: 0x04,
  CommandsAbortedDueToPowerLoss: 0x05,
  InternalError: 0x06,
  CommandAbortRequested: 0x07,
  CommandAbortedDueToSqDeletion: 0x08,
  InvalidNamespaceOrFormat: 0x0b,
  CommandSequenceError: 0x0c,
  InvalidSglSegmentDescriptor: 0x0d,
  InvalidNumberOfSglDescriptors: 0x0e,
  DataSglLengthInvalid: 0x0f,
  MetadataSglLengthInvalid: 0x10,
  SglDescriptorTypeInvalid: 0x11,
  InvalidUseOfControllerMemoryBuffer: 0x12,
  PrpOffsetInvalid: 0x13,
  OperationDenied: 0x15,
  SglOffsetInvalid: 0x16,
  /** TP4159. */
  InvalidControllerDataQueue: 0x37,
  /** TP4159. */
  NotEnoughResources: 0x38,
  /** TP4159: operation not allowed while the controller is suspended. */
  ControllerSuspended: 0x39,
  /** TP4159: operation requires a suspended controller. */
  ControllerNotSuspended: 0x3a,
  /** TP4159. */
  ControllerDataQueueFull: 0x3b,
  LbaOutOfRange: 0x80,
  CapacityExceeded: 0x81,
  NamespaceNotReady: 0x82,
} as const;

/** Command Specific Status values (SCT 1h). */
export const CommandSpecificStatus = {
  CompletionQueueInvalid: 0x00,
  InvalidQueueIdentifier: 0x01,
  InvalidQueueSize: 0x02,
  AbortCommandLimitExceeded: 0x03,
  AsynchronousEventRequestLimitExceeded: 0x05,
  InvalidFirmwareSlot: 0x06,
  InvalidInterruptVector: 0x08,
  InvalidLogPage: 0x09,
  InvalidFormat: 0x0a,
  InvalidQueueDeletion: 0x0c,
  FeatureIdentifierNotSaveable: 0x0d,
  FeatureNotChangeable: 0x0e,
  FeatureNotNamespaceSpecific: 0x0f,
  NamespaceNotAttached: 0x1a,
  InvalidControllerIdentifier: 0x1f,
  InvalidSecondaryControllerState: 0x20,
  InvalidNumberOfControllerResources: 0x21,
  InvalidResourceIdentifier: 0x22,
  /** NVM command set specific. */
  ConflictingAttributes: 0x80,
  AttemptedWriteToReadOnlyRange: 0x82,
} as const;

/** Media and Data Integrity Errors (SCT 2h). */
export const MediaStatus = {
  UnrecoveredReadError: 0x81,
  CompareFailure: 0x85,
  AccessDenied: 0x86,
  DeallocatedOrUnwrittenLogicalBlock: 0x87,
} as const;

export const STATUS_DNR = 1 << 14;
export const STATUS_MORE = 1 << 13;

/** Compose a 15-bit status field value. */
export function status(sct: number, sc: number, dnr = true): number {
  return ((sct & 0x7) << 8) | (sc & 0xff) | (dnr ? STATUS_DNR : 0);
}

export const Status = {
  Success: 0,
  InvalidOpcode: status(StatusCodeType.Generic, GenericStatus.InvalidCommandOpcode),
  InvalidField: status(StatusCodeType.Generic, GenericStatus.InvalidFieldInCommand),
  DataTransferError: status(StatusCodeType.Generic, GenericStatus.DataTransferError),
  InternalError: status(StatusCodeType.Generic, GenericStatus.InternalError),
  AbortRequested: status(StatusCodeType.Generic, GenericStatus.CommandAbortRequested, false),
  AbortedSqDeletion: status(StatusCodeType.Generic, GenericStatus.CommandAbortedDueToSqDeletion, false),
  InvalidNamespace: status(StatusCodeType.Generic, GenericStatus.InvalidNamespaceOrFormat),
  CommandSequenceError: status(StatusCodeType.Generic, GenericStatus.CommandSequenceError),
  PrpOffsetInvalid: status(StatusCodeType.Generic, GenericStatus.PrpOffsetInvalid),
  SglDescriptorTypeInvalid: status(StatusCodeType.Generic, GenericStatus.SglDescriptorTypeInvalid),
  InvalidSglSegmentDescriptor: status(StatusCodeType.Generic, GenericStatus.InvalidSglSegmentDescriptor),
  DataSglLengthInvalid: status(StatusCodeType.Generic, GenericStatus.DataSglLengthInvalid),
  InvalidNumberOfSglDescriptors: status(StatusCodeType.Generic, GenericStatus.InvalidNumberOfSglDescriptors),
  CommandIdConflict: status(StatusCodeType.Generic, GenericStatus.CommandIdConflict),
  CapacityExceeded: status(StatusCodeType.Generic, GenericStatus.CapacityExceeded),
  FeatureNotChangeable: status(StatusCodeType.CommandSpecific, CommandSpecificStatus.FeatureNotChangeable),
  FeatureNotNamespaceSpecific: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.FeatureNotNamespaceSpecific,
  ),
  LbaOutOfRange: status(StatusCodeType.Generic, GenericStatus.LbaOutOfRange),
  InvalidControllerDataQueue: status(StatusCodeType.Generic, GenericStatus.InvalidControllerDataQueue),
  NotEnoughResources: status(StatusCodeType.Generic, GenericStatus.NotEnoughResources),
  ControllerSuspended: status(StatusCodeType.Generic, GenericStatus.ControllerSuspended),
  ControllerNotSuspended: status(StatusCodeType.Generic, GenericStatus.ControllerNotSuspended),
  ControllerDataQueueFull: status(StatusCodeType.Generic, GenericStatus.ControllerDataQueueFull),
  CompletionQueueInvalid: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.CompletionQueueInvalid,
  ),
  InvalidQueueIdentifier: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.InvalidQueueIdentifier,
  ),
  InvalidQueueSize: status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueSize),
  AbortCommandLimitExceeded: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.AbortCommandLimitExceeded,
  ),
  AsyncEventRequestLimitExceeded: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.AsynchronousEventRequestLimitExceeded,
  ),
  InvalidInterruptVector: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.InvalidInterruptVector,
  ),
  InvalidLogPage: status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidLogPage),
  InvalidQueueDeletion: status(StatusCodeType.CommandSpecific, CommandSpecificStatus.InvalidQueueDeletion),
  FeatureNotSaveable: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.FeatureIdentifierNotSaveable,
  ),
  NamespaceNotAttached: status(StatusCodeType.CommandSpecific, CommandSpecificStatus.NamespaceNotAttached),
  InvalidControllerIdentifier: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.InvalidControllerIdentifier,
  ),
  InvalidSecondaryControllerState: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.InvalidSecondaryControllerState,
  ),
  InvalidNumberOfControllerResources: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.InvalidNumberOfControllerResources,
  ),
  InvalidResourceIdentifier: status(
    StatusCodeType.CommandSpecific,
    CommandSpecificStatus.InvalidResourceIdentifier,
  ),
  CompareFailure: status(StatusCodeType.MediaAndDataIntegrity, MediaStatus.CompareFailure),
  UnrecoveredReadError: status(StatusCodeType.MediaAndDataIntegrity, MediaStatus.UnrecoveredReadError),
} as const;

export function statusCode(s: number): number {
  return s & 0xff;
}
export function statusCodeType(s: number): number {
  return (s >> 8) & 0x7;
}
export function statusDnr(s: number): boolean {
  return (s & STATUS_DNR) !== 0;
}

const names = new Map<number, string>();
for (const [k, v] of Object.entries(GenericStatus)) names.set((StatusCodeType.Generic << 8) | v, k);
for (const [k, v] of Object.entries(CommandSpecificStatus))
  names.set((StatusCodeType.CommandSpecific << 8) | v, k);
for (const [k, v] of Object.entries(MediaStatus))
  names.set((StatusCodeType.MediaAndDataIntegrity << 8) | v, k);

/** Spec name of a status, e.g. `InvalidFieldInCommand`, for logs and errors. */
export function statusName(s: number): string {
  return names.get(s & 0x7ff) ?? `sct${statusCodeType(s)}/sc0x${statusCode(s).toString(16)}`;
}
