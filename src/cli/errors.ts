/**
 * The CLI boundary's one error type. `exitCode` is a closed set: 1 (the command failed — a bad file,
 * a missing module, a library error) or 2 (usage: unknown option, missing or invalid argument).
 */
export type CliExitCode = 1 | 2;

export class CliError extends Error {
  override readonly name = "CliError";
  readonly exitCode: CliExitCode;

  constructor(message: string, exitCode: CliExitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
  }
}
