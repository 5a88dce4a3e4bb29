/**
 * `nvmig inspect FILE`: reads a file holding a TP4159 controller state blob or a device migration
 * stream ("NVMIGSTR" magic) and prints the library's decoding of it. Streams are read in chunks, so a
 * stream of any size is inspected in bounded memory.
 */
import { closeSync, createReadStream, fstatSync, openSync, readSync } from "node:fs";
import { inspectControllerState, MAX_INSPECT_STATE_BYTES } from "../controller/migration/inspect.ts";
import { STREAM_MAGIC } from "../migration/stream/format.ts";
import { looksLikeMigrationStream, StreamInspector } from "../migration/stream/inspect.ts";
import { CliError } from "./errors.ts";
import { printResult } from "./output.ts";

export interface InspectCliOptions {
  json: boolean;
  /** Most stream records listed individually. */
  maxRecords: number;
}

const READ_CHUNK_BYTES = 1 << 20;

function fsFailure(file: string, e: unknown): CliError {
  const err = e as NodeJS.ErrnoException;
  return new CliError(`cannot read ${file}: ${err.message}`, 1, { cause: e });
}

/** Reads the file's size and first bytes (to tell a stream from a controller state). */
function sniff(file: string): { sizeBytes: number; head: Uint8Array } {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw fsFailure(file, e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CliError(`${file} is not a regular file`);
    const head = new Uint8Array(STREAM_MAGIC.byteLength);
    const n = readSync(fd, head, 0, head.byteLength, 0);
    return { sizeBytes: st.size, head: head.subarray(0, n) };
  } catch (e) {
    throw e instanceof CliError ? e : fsFailure(file, e);
  } finally {
    closeSync(fd);
  }
}

async function inspectStreamFile(file: string, maxListedRecords: number) {
  const inspector = new StreamInspector({ maxListedRecords });
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: READ_CHUNK_BYTES })) {
      if (!inspector.push(chunk as Buffer)) break;
    }
  } catch (e) {
    throw fsFailure(file, e);
  }
  return inspector.finish();
}

async function inspectStateFile(file: string, sizeBytes: number) {
  if (sizeBytes > MAX_INSPECT_STATE_BYTES)
    throw new CliError(
      `${file}: ${sizeBytes} bytes is neither a device migration stream (no NVMIGSTR magic) nor a controller state (at most ${MAX_INSPECT_STATE_BYTES} bytes)`,
    );
  const { readFile } = await import("node:fs/promises");
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (e) {
    throw fsFailure(file, e);
  }
  return inspectControllerState(bytes);
}

export async function runInspect(file: string, opts: InspectCliOptions): Promise<number> {
  const { sizeBytes, head } = sniff(file);
  const isStream = looksLikeMigrationStream(head);
  const result = isStream
    ? await inspectStreamFile(file, opts.maxRecords)
    : await inspectStateFile(file, sizeBytes);
  if ("error" in result) {
    throw new CliError(
      isStream ? `${file}: ${result.error}` : `${file}: ${result.error} (and no NVMIGSTR stream magic)`,
    );
  }
  printResult(result, { json: opts.json });
  return 0;
}
