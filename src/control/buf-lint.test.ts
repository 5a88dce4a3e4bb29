/**
 * `buf lint` (STANDARD rules, buf.yaml) passes on proto/ — and does fail on a violation, shown on a
 * throw-away module so the check is known to bite.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { tempDir } from "./test-support.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const buf = join(root, "node_modules", ".bin", "buf");

async function lint(cwd: string): Promise<{ ok: boolean; output: string }> {
  try {
    const r = await run(buf, ["lint"], { cwd, timeout: 60_000 });
    return { ok: true, output: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, output: `${err.stdout ?? ""}${err.stderr ?? ""}` };
  }
}

test("buf lint passes on proto/", async () => {
  const r = await lint(root);
  assert.ok(r.ok, r.output);
  assert.equal(r.output, "");
});

test("buf lint reports a STANDARD violation (service name without the Service suffix)", async () => {
  const dir = tempDir("buf-lint");
  try {
    writeFileSync(
      join(dir.path, "buf.yaml"),
      "version: v2\nmodules:\n  - path: proto\nlint:\n  use:\n    - STANDARD\n",
    );
    mkdirSync(join(dir.path, "proto", "bad", "v1"), { recursive: true });
    writeFileSync(
      join(dir.path, "proto", "bad", "v1", "bad.proto"),
      'syntax = "proto3";\npackage bad.v1;\nmessage PingRequest {}\nmessage PingResponse {}\nservice Pinger {\n  rpc Ping(PingRequest) returns (PingResponse);\n}\n',
    );
    const r = await lint(dir.path);
    assert.equal(r.ok, false);
    assert.match(r.output, /Service name "Pinger" should be suffixed with "Service"/);
  } finally {
    dir.cleanup();
  }
});
