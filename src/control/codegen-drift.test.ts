/**
 * Drift check: regenerating src/gen/ from proto/ (scripts/proto-gen.mjs into a temp dir) must give
 * exactly the committed files. Fails when someone edits a .proto without regenerating, edits
 * generated code by hand, or the generator's pinned version changes its output.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { tempDir } from "./test-support.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const committed = join(root, "src", "gen");

function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** Human-readable differences between two trees ([] = identical). */
function differences(expected: string, actual: string): string[] {
  const a = files(expected);
  const b = files(actual);
  const out: string[] = [];
  for (const [path, bytes] of a) {
    const other = b.get(path);
    if (other === undefined) out.push(`missing after regeneration: ${path}`);
    else if (!other.equals(bytes)) out.push(`differs: ${path}`);
  }
  for (const path of b.keys()) if (!a.has(path)) out.push(`not committed: ${path}`);
  return out;
}

test("src/gen/ equals a fresh `node scripts/proto-gen.mjs` output", async () => {
  const dir = tempDir("codegen-drift");
  try {
    const out = join(dir.path, "gen");
    await run(process.execPath, [join(root, "scripts", "proto-gen.mjs"), "--out", out], {
      cwd: root,
      timeout: 60_000,
    });
    assert.ok(files(out).size >= 3, "generator produced the migration, health and descriptor modules");
    assert.deepEqual(differences(committed, out), [], "run `node scripts/proto-gen.mjs` and commit src/gen/");

    // The check can fail: a hand edit is reported.
    const tampered = join(dir.path, "tampered");
    cpSync(committed, tampered, { recursive: true });
    const victim = join(tampered, "nvmig", "v1", "migration.ts");
    writeFileSync(victim, `${readFileSync(victim, "utf8")}\n// hand edit\n`);
    assert.deepEqual(differences(tampered, out), ["differs: nvmig/v1/migration.ts"]);
  } finally {
    dir.cleanup();
  }
});
