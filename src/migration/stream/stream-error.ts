/**
 * The one error type of the device-migration-stream boundary: a peer's stream is refused with one of
 * these, returned as a value by `StreamParser` (never thrown). `code` is a closed set; `offsetBytes` is
 * the stream offset where the problem was found.
 *
 * - `bad-magic`             the stream does not start with "NVMIGSTR".
 * - `unsupported-version`   the stream version is neither the current nor the previous one.
 * - `truncated`             the stream ended inside the header or inside a record.
 * - `crc-mismatch`          a header/record CRC-32C, or the END record's chain CRC, does not match.
 * - `record-too-large`      a record declares more payload than the limit, or retaining it would exceed
 *                           the parser's retained-bytes limit (checked before anything is allocated).
 * - `unknown-mandatory-tag` a record tag this build does not know, without the OPTIONAL flag.
 * - `missing-end`           the stream ended on a record boundary without an END record.
 * - `data-after-end`        bytes follow the END record.
 * - `malformed-record`      a field is invalid: reserved bits/fields set, a length that does not fit the
 *                           tag's layout, bad identity text, an END summary that disagrees with the stream.
 */
export type StreamErrorCode =
  | "bad-magic"
  | "unsupported-version"
  | "truncated"
  | "crc-mismatch"
  | "record-too-large"
  | "unknown-mandatory-tag"
  | "missing-end"
  | "data-after-end"
  | "malformed-record";

export class StreamError extends Error {
  override readonly name = "StreamError";
  readonly code: StreamErrorCode;
  /** Human-readable explanation (also the end of `message`). */
  readonly detail: string;
  /** Stream byte offset at which the problem was detected. */
  readonly offsetBytes: number;

  constructor(code: StreamErrorCode, detail: string, offsetBytes: number, options?: { cause?: unknown }) {
    super(`${code} at byte ${offsetBytes}: ${detail}`, options);
    this.code = code;
    this.detail = detail;
    this.offsetBytes = offsetBytes;
  }
}
