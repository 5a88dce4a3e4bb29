/**
 * Public API of the out-of-band control plane (gRPC): server, client, backend seam, errors,
 * authorization, development certificates, lease table. Everything else in this folder is internal.
 */
export type { AllowedFunctions, AuthzPolicy, AuthzRule } from "./authz.ts";
export { allowAll, allowedFunctions, isAllowed, parseAuthzPolicy } from "./authz.ts";
export type * from "./backend.ts";
export type { CertKeyPaths, DevCertificateOptions, DevCertificates, TlsMaterial } from "./certs.ts";
export { makeDevCertificates, readTlsFiles } from "./certs.ts";
export type {
  CallOptions,
  ClientTlsOptions,
  ConnectControlOptions,
  ControlClient,
  HealthStatus,
  StateSelector,
} from "./client.ts";
export { connectControl } from "./client.ts";
export { crc32c } from "./crc32c.ts";
export type { ControlErrorCode } from "./errors.ts";
export { ControlError, grpcStatusOfCode } from "./errors.ts";
export { FakeControlBackend } from "./fake-backend.ts";
export type { HealthState } from "./health.ts";
export { identityFromCertificate, SPIFFE_PREFIX } from "./identity.ts";
export type { Clock, LeaseTableOptions } from "./lease-table.ts";
export { LeaseTable, systemClock } from "./lease-table.ts";
export * from "./limits.ts";
export type { ControlLogger } from "./logger.ts";
export type {
  ControlServer,
  ControlServerOptions,
  TcpListenOptions,
  TlsServerOptions,
  UnixListenOptions,
} from "./server.ts";
export { createControlServer, MIGRATION_SERVICE_NAME } from "./server.ts";
export type { ControllerStateChunk } from "./state-chunks.ts";
export { ControllerStateAssembler, chunkControllerState } from "./state-chunks.ts";
