/**
 * The one error type of the vfio boundary. Guest and VMM mistakes are errno values, never this; it is
 * thrown only for bugs in our own code (a variant driver breaking the backend contract).
 *
 * - `invalid-backend`    the backend's migration flags are not a valid capability (STOP_COPY missing,
 *                        unknown bits).
 * - `backend-contract`   the backend returned something the contract forbids (missing or unexpected
 *                        session, empty or oversize read, bitmap of the wrong size, bad page size).
 * - `backend-threw`      a backend call threw; `cause` is what it threw. An arc that throws leaves the
 *                        portal in ERROR.
 */
export type VfioPortalErrorCode = "invalid-backend" | "backend-contract" | "backend-threw";

export class VfioPortalError extends Error {
  override readonly name = "VfioPortalError";
  readonly code: VfioPortalErrorCode;

  constructor(code: VfioPortalErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
  }

  /** True if `e` is a VfioPortalError (optionally with the given code). */
  static is(e: unknown, code?: VfioPortalErrorCode): e is VfioPortalError {
    return e instanceof VfioPortalError && (code === undefined || e.code === code);
  }
}
