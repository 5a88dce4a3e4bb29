#!/usr/bin/env node
// Runs every test file of the project through node:test with an explicit file list.
//
// Node 20 neither expands globs given to --test nor discovers .ts files by itself, and a
// run over zero files "passes". So this script walks the tree for *.test.ts files,
// refuses to run with none, and hands node the explicit list.
//
// Usage: node scripts/run-tests.mjs [substring ...]   (only files whose path contains one)
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const roots = ["src", "test"];
const skipDirs = new Set(["node_modules", "build", "gen"]);

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (!skipDirs.has(name)) walk(path, out);
    } else if (name.endsWith(".test.ts")) {
      out.push(relative(root, path));
    }
  }
  return out;
}

const filters = process.argv.slice(2);
let files = roots.flatMap((r) => walk(join(root, r), [])).sort();
if (filters.length > 0) files = files.filter((f) => filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error("run-tests: no test files found; refusing to report success");
  process.exit(1);
}
const concurrency = Number(process.env.NVMIG_TEST_CONCURRENCY ?? 2);
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...files],
  { cwd: root, stdio: "inherit" },
);
process.exit(result.status ?? 1);
