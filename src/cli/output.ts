/**
 * The CLI's only way to print: a command's result goes to stdout either as one JSON document
 * (`--json`, for tools) or as an indented "key: value" outline (for people); errors go to stderr as one
 * line (the stack only with NVMIG_DEBUG=1).
 */
import { CliError } from "./errors.ts";

export interface OutputOptions {
  /** Print one JSON document instead of the human-readable outline. Default false. */
  json?: boolean;
  /** Where to write. Default process.stdout. */
  out?: (text: string) => void;
}

const stdout = (text: string): void => {
  process.stdout.write(text);
};

/** Prints a command's result: JSON (`--json`) or `human(value)` (default: `formatHuman`). */
export function printResult(
  value: unknown,
  opts: OutputOptions,
  human: (v: unknown) => string = formatHuman,
): void {
  const write = opts.out ?? stdout;
  const text = opts.json === true ? JSON.stringify(value, jsonReplacer, 2) : human(value);
  write(text.endsWith("\n") ? text : `${text}\n`);
}

function jsonReplacer(_key: string, v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  return v;
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "string") return v === "" ? '""' : v;
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
  return String(v);
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v !== "object" || v instanceof Uint8Array;
}

/**
 * An indented outline of a JSON-like value: objects as "key: value" lines, nested values indented by
 * two spaces, arrays of scalars inline ("[1, 2, 3]"), arrays of objects as "- " items.
 */
export function formatHuman(value: unknown, indent = ""): string {
  if (isScalar(value)) return `${indent}${scalar(value)}\n`;
  if (Array.isArray(value)) return formatArray(value, indent);
  let s = "";
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (isScalar(v)) s += `${indent}${key}: ${scalar(v)}\n`;
    else if (Array.isArray(v) && (v.length === 0 || v.every(isScalar)))
      s += `${indent}${key}: [${v.map(scalar).join(", ")}]\n`;
    else if (!Array.isArray(v) && Object.keys(v as object).length === 0) s += `${indent}${key}: {}\n`;
    else s += `${indent}${key}:\n${formatHuman(v, `${indent}  `)}`;
  }
  return s;
}

function formatArray(items: readonly unknown[], indent: string): string {
  if (items.every(isScalar)) return `${indent}[${items.map(scalar).join(", ")}]\n`;
  let s = "";
  for (const item of items) {
    const body = formatHuman(item, `${indent}  `);
    // The first line of each item carries the "- " marker in place of its indentation.
    s += `${indent}- ${body.slice(indent.length + 2)}`;
  }
  return s;
}

/** Prints an error as one line on stderr ("nvmig[ <command>]: <message>"); the stack with NVMIG_DEBUG=1. */
export function printError(err: unknown, command?: string, write: (text: string) => void = stderr): void {
  const prefix = command === undefined ? "nvmig" : `nvmig ${command}`;
  const message = err instanceof Error ? err.message : String(err);
  write(`${prefix}: ${message.replace(/\s*\n\s*/g, " ").trim()}\n`);
  if (process.env.NVMIG_DEBUG === "1" && err instanceof Error && !(err instanceof CliError)) {
    write(`${err.stack ?? ""}\n`);
    if (err.cause !== undefined) write(`cause: ${String(err.cause)}\n`);
  }
}

const stderr = (text: string): void => {
  process.stderr.write(text);
};
