/**
 * The logging seam of the control plane: the subset of pino's Logger it uses (so a pino logger or
 * child logger can be passed as is). Every line carries `event`, a stable name:
 *   control.listening            a listener is up (transport, address)
 *   control.insecure-listener    WARN: a TCP listener without TLS (tests only)
 *   control.unauthenticated      WARN: a call without a verified identity was refused
 *   control.permission-denied    WARN: an identity tried a function it is not allowed
 *   control.internal-error       ERROR: a handler failed with a non-ControlError (a bug)
 *   control.closed               the server stopped
 */
import { pino } from "pino";

export interface ControlLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Default: pino, JSON lines on stderr (fd 2, synchronous), level info, name "nvmig-control". */
export function defaultControlLogger(): ControlLogger {
  return pino({ name: "nvmig-control", level: "info" }, pino.destination({ fd: 2, sync: true }));
}
