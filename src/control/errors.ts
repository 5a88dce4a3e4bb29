/**
 * The one error type of the control-plane boundary, and the ONLY place where its codes meet gRPC
 * status codes (both directions).
 *
 * Backends throw `ControlError`s; the server turns them into a gRPC status; the client turns a gRPC
 * status back into a `ControlError` with the same code. Anything else a backend throws is a bug and
 * becomes `internal` (the original is kept as `cause` on the server and logged; the client sees only
 * the code and a generic message).
 *
 * | code                 | gRPC status         | meaning                                                  |
 * |----------------------|---------------------|----------------------------------------------------------|
 * | `not-found`          | NOT_FOUND           | no such function / namespace / lease                     |
 * | `invalid-argument`   | INVALID_ARGUMENT    | the request is malformed whatever the device state is    |
 * | `failed-precondition`| FAILED_PRECONDITION | the request is valid but not in the current state         |
 * | `unauthenticated`    | UNAUTHENTICATED     | no verified identity (no / foreign client certificate)   |
 * | `permission-denied`  | PERMISSION_DENIED   | identity known, not allowed for this function            |
 * | `unavailable`        | UNAVAILABLE         | server unreachable / shutting down / TLS handshake failed |
 * | `internal`           | INTERNAL            | a bug on the server side                                  |
 * | `aborted`            | ABORTED             | concurrent change (e.g. the lease changed hands)           |
 * | `deadline-exceeded`  | DEADLINE_EXCEEDED   | the caller's deadline passed (client side mostly)         |
 * | `cancelled`          | CANCELLED           | the caller cancelled                                      |
 * | `unimplemented`      | UNIMPLEMENTED       | the server does not know the RPC (older version)          |
 * | `resource-exhausted` | RESOURCE_EXHAUSTED  | a size limit was hit (e.g. message too large)             |
 *
 * Statuses outside this table (UNKNOWN, ALREADY_EXISTS, OUT_OF_RANGE, DATA_LOSS) arrive at the
 * client as `internal` with `grpcStatus` telling the original.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";

export type ControlErrorCode =
  | "not-found"
  | "invalid-argument"
  | "failed-precondition"
  | "unauthenticated"
  | "permission-denied"
  | "unavailable"
  | "internal"
  | "aborted"
  | "deadline-exceeded"
  | "cancelled"
  | "unimplemented"
  | "resource-exhausted";

/** code → gRPC status. The table the server uses; the client uses its inverse. */
export const grpcStatusOfCode: Readonly<Record<ControlErrorCode, GrpcStatus>> = {
  "not-found": GrpcStatus.NOT_FOUND,
  "invalid-argument": GrpcStatus.INVALID_ARGUMENT,
  "failed-precondition": GrpcStatus.FAILED_PRECONDITION,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  "permission-denied": GrpcStatus.PERMISSION_DENIED,
  unavailable: GrpcStatus.UNAVAILABLE,
  internal: GrpcStatus.INTERNAL,
  aborted: GrpcStatus.ABORTED,
  "deadline-exceeded": GrpcStatus.DEADLINE_EXCEEDED,
  cancelled: GrpcStatus.CANCELLED,
  unimplemented: GrpcStatus.UNIMPLEMENTED,
  "resource-exhausted": GrpcStatus.RESOURCE_EXHAUSTED,
};

const codeOfGrpcStatus: ReadonlyMap<number, ControlErrorCode> = new Map(
  Object.entries(grpcStatusOfCode).map(([code, status]) => [status, code as ControlErrorCode]),
);

export class ControlError extends Error {
  override readonly name = "ControlError";
  readonly code: ControlErrorCode;
  /** The gRPC status this error travelled as, when it came from the wire (client side). */
  readonly grpcStatus: number | undefined;

  constructor(code: ControlErrorCode, message: string, options?: { cause?: unknown; grpcStatus?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.grpcStatus = options?.grpcStatus;
  }

  /** True if `e` is a ControlError (optionally with the given code). */
  static is(e: unknown, code?: ControlErrorCode): e is ControlError {
    return e instanceof ControlError && (code === undefined || e.code === code);
  }

  /** Normalises anything thrown: a ControlError passes through, the rest becomes `internal`. */
  static from(e: unknown): ControlError {
    if (e instanceof ControlError) return e;
    const message = e instanceof Error ? e.message : String(e);
    return new ControlError("internal", `internal error: ${message}`, { cause: e });
  }
}

/** What grpc-js needs to end a call with an error status. */
export interface GrpcErrorStatus {
  code: GrpcStatus;
  details: string;
}

/**
 * Server side: the gRPC status for anything a handler threw. Non-ControlErrors are reported as
 * INTERNAL with a generic message (their text may hold server internals; it is logged instead).
 */
export function toGrpcStatus(e: unknown): GrpcErrorStatus {
  if (e instanceof ControlError) return { code: grpcStatusOfCode[e.code], details: e.message };
  return { code: GrpcStatus.INTERNAL, details: "internal error" };
}

/**
 * Client side: the ControlError for a gRPC status (`code`, `details` as grpc-js reports them in a
 * ServiceError). Statuses without an entry in the table become `internal`.
 */
export function fromGrpcStatus(status: number, details: string, cause?: unknown): ControlError {
  const code = codeOfGrpcStatus.get(status) ?? "internal";
  const text = details === "" ? `${code} (gRPC status ${status})` : details;
  return new ControlError(code, text, { cause, grpcStatus: status });
}

/** Client side: maps an error grpc-js raised (a ServiceError, or anything else) to a ControlError. */
export function fromGrpcError(e: unknown): ControlError {
  if (e instanceof ControlError) return e;
  if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "number") {
    const details = "details" in e && typeof e.details === "string" ? e.details : "";
    return fromGrpcStatus(e.code, details, e);
  }
  return ControlError.from(e);
}
