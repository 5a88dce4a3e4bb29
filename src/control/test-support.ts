/**
 * Helpers shared by this folder's tests (temp dirs, a test PKI, a recording logger, assertions).
 * Test-only; not API.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeDevCertificates, readTlsFiles, type TlsMaterial } from "./certs.ts";
import { ControlError, type ControlErrorCode } from "./errors.ts";
import type { ControlLogger } from "./logger.ts";

/** A fresh directory under the OS temp dir; `cleanup()` removes it. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `nvmig-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export interface TestPki {
  /** Server material for host 127.0.0.1 (SAN 127.0.0.1, localhost, ::1). */
  server: TlsMaterial;
  /** Client material by identity. */
  client(name: string): TlsMaterial;
  /** A client "orch" certificate issued by a DIFFERENT CA (trusting our server CA). */
  foreignClient: TlsMaterial;
  /** PEM of the CA. */
  caPem: Buffer;
}

/** Writes a development PKI into `dir` (plus a foreign CA in dir/foreign). */
export function makeTestPki(dir: string, clients: readonly string[]): TestPki {
  const ours = makeDevCertificates({ dir, hosts: ["127.0.0.1"], clients });
  const foreign = makeDevCertificates({ dir: join(dir, "foreign"), hosts: [], clients: ["orch"] });
  const server = ours.servers["127.0.0.1"]!;
  const material = (paths: { cert: string; key: string }): TlsMaterial =>
    readTlsFiles({ ca: ours.ca.cert, cert: paths.cert, key: paths.key });
  return {
    server: material(server),
    client: (name) => {
      const paths = ours.clients[name];
      if (paths === undefined) throw new Error(`no test client ${name}`);
      return material(paths);
    },
    foreignClient: material(foreign.clients.orch!),
    caPem: readFileSync(ours.ca.cert),
  };
}

export interface LogLine {
  level: "info" | "warn" | "error";
  fields: Record<string, unknown>;
  message: string;
}

/** A logger that records instead of printing. */
export function recordingLogger(): ControlLogger & { lines: LogLine[]; events(): string[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine["level"]) =>
    (fields: Record<string, unknown>, message: string): void => {
      lines.push({ level, fields, message });
    };
  return {
    lines,
    events: () => lines.map((l) => String(l.fields.event)),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Asserts `promise` rejects with a ControlError of `code` (and a message matching `message`). */
export async function rejectsWith(
  promise: Promise<unknown>,
  code: ControlErrorCode,
  message?: RegExp,
): Promise<ControlError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ControlError, `expected a ControlError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, `code of: ${caught.message}`);
  if (message !== undefined) assert.match(caught.message, message);
  return caught;
}

/** Polls `predicate` every 5 ms until true (bounded to `limit` tries); for waiting on server-side effects. */
export async function until(predicate: () => boolean, limit = 2000): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (predicate()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail("condition not reached");
}
