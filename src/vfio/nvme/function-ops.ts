/**
 * What the NVMe migration sessions need from "the controlling side", whoever provides it: the PF's
 * admin queue in band (`ControllerOps`, `UdmqReader`), or the controlling function's gRPC agent out of
 * band. Small interfaces, so the same saving / resuming sessions serve both paths.
 */
export interface ControlledFunctionOps {
  /** TP4159 Suspend (STYPE 1) of the controlled controller. */
  suspend(): Promise<void>;
  /** Resume; `ifSuspended` tolerates a controller that already runs. */
  resume(ifSuspended?: boolean): Promise<void>;
  /** Get Controller State (whole blob). */
  getState(): Promise<Uint8Array>;
  /** Set Controller State (whole blob; the controller validates before applying). */
  setState(blob: Uint8Array): Promise<void>;
}

/** A source of changed LBA ranges feeding the session's change logs (a UDMQ, or an agent's stream). */
export interface ChangeFeed {
  /** Moves every change reported so far into the logs. */
  drain(): Promise<unknown>;
}
