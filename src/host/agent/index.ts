/**
 * Public API of the controlling function's agent: the real `ControlBackend` over a `HostNode`.
 * Everything else in this folder is internal.
 */
export type { HostAgentOptions } from "./agent.ts";
export { createHostAgent, HostAgent } from "./agent.ts";
export { asControlError, controlCodeOfStatus, deviceError } from "./device-errors.ts";
export type { ExpiryAction, LeaseDurations } from "./lease-keeper.ts";
