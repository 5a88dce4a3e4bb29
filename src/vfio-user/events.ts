/**
 * Named log events of the vfio-user server and client (the catalogue). Each peer mistake the server
 * answers with an error reply, and each connection-level decision, is reported through the `log`
 * option as one of these; tests subscribe to them.
 */

export type VfioUserEventName =
  // connection lifecycle
  | "client-attached"
  | "client-rejected"
  | "client-detached"
  | "connection-closed-by-server"
  // negotiation
  | "version-negotiated"
  | "version-rejected"
  | "command-before-version"
  // framing (the connection is closed after these three)
  | "header-truncated"
  | "size-below-header"
  | "size-mismatch"
  // per-message errors (answered with an error reply, the connection stays)
  | "message-too-large"
  | "unknown-type"
  | "unknown-command"
  | "wrong-direction"
  | "bad-payload"
  | "unexpected-fds"
  | "missing-fds"
  | "too-many-fds"
  | "command-failed"
  | "backend-threw"
  // server-initiated DMA and other replies
  | "reply-unmatched"
  | "dma-timeout";

export interface VfioUserEvent {
  name: VfioUserEventName;
  level: "info" | "warn" | "error";
  /** Message id, when the event concerns one message. */
  id?: number;
  /** Command number, when known. */
  command?: number;
  /** errno sent back, when an error reply was sent (or would have been, for NO_REPLY). */
  errno?: number;
  /** Short free text (decoder reason, exception message). */
  detail?: string;
}

export type VfioUserLog = (event: VfioUserEvent) => void;
