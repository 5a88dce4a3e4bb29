/**
 * The program in process (`runCli` with captured output): exit codes and one-line messages for usage
 * errors and failures, NVMIG_DEBUG, and the small helpers (entry loading, output, option parsers).
 * cli.test.ts runs the real command as a child process.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { InvalidArgumentError } from "@commander-js/extra-typings";
import { CliError } from "./errors.ts";
import { loadEntry } from "./load-entry.ts";
import { formatHuman, printResult } from "./output.ts";
import { commaList, integer } from "./parse.ts";
import { runCli } from "./program.ts";

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(["node", "nvmig", ...args], {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

function oneLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 1, text);
  return lines[0]!;
}

test("usage errors: exit 2, one line naming the command and its --help", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["vm", "--attach", "s", "--ops", "0"],
      /^nvmig vm: option '--ops <N>' argument '0' is invalid\. expected an integer in 1\.\./,
    ],
    [
      ["migrate", "--from", "a"],
      /^nvmig migrate: required option '--to <CONFIG>' not specified \(see 'nvmig migrate --help'\)$/,
    ],
    [
      ["migrate", "--from", "a", "--to", "b", "--function", "f", "--vm", "v", "--path", "sideways"],
      /^nvmig migrate: option '--path <PATH>' argument 'sideways' is invalid/,
    ],
    [["bench", "disk"], /^nvmig bench: .*'disk' is invalid/],
    [["inspect"], /^nvmig inspect: missing required argument 'FILE'/],
    [["inspect", "a", "b"], /^nvmig inspect: too many arguments/],
    [["fly"], /^nvmig: unknown command 'fly' \(see 'nvmig --help'\)$/],
    [["inspect", "--jsn", "x"], /^nvmig inspect: unknown option '--jsn' \(Did you mean --json\?\)/],
  ];
  for (const [args, pattern] of cases) {
    const r = await cli(...args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(oneLine(r.err), pattern);
    assert.equal(r.out, "");
  }
});

test("no command: the help on stderr, then one line; exit 2", async () => {
  const r = await cli();
  assert.equal(r.code, 2);
  assert.match(r.err, /^Usage: nvmig/);
  assert.match(r.err, /\nnvmig: a command is required \(see 'nvmig --help'\)\n$/);
});

test("--help and --version exit 0 on stdout", async () => {
  const h = await cli("migrate", "--help");
  assert.equal(h.code, 0);
  assert.match(h.out, /--max-downtime-ms <N>/);
  const v = await cli("--version");
  assert.equal(v.code, 0);
  assert.match(v.out, /^\d+\.\d+\.\d+\n$/);
});

test("a failure exits 1 with one line; NVMIG_DEBUG=1 adds the stack of a library error", async () => {
  const missing = await cli("inspect", "/nonexistent/nvmig/state");
  assert.equal(missing.code, 1);
  assert.match(oneLine(missing.err), /^nvmig inspect: cannot read \/nonexistent\/nvmig\/state: ENOENT/);

  const dir = mkdtempSync(join(tmpdir(), "nvmig-cli-"));
  try {
    const args = ["certs", "--dir", dir, "--hosts", "bad host!", "--clients", ""];
    const plain = await cli(...args);
    assert.equal(plain.code, 1);
    assert.match(oneLine(plain.err), /^nvmig certs: .*bad host!/);
    process.env.NVMIG_DEBUG = "1";
    const debug = await cli(...args);
    assert.equal(debug.code, 1);
    assert.match(debug.err, /^nvmig certs: [^\n]*\n[\s\S]*\n\s+at makeDevCertificates /);
  } finally {
    delete process.env.NVMIG_DEBUG;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("loadEntry: a missing module or export is 'not available in this build' (CliError, exit 1)", async () => {
  await assert.rejects(loadEntry("../nonexistent/entry.ts", "run"), (e: unknown) => {
    assert.ok(e instanceof CliError);
    assert.equal(e.exitCode, 1);
    assert.equal(e.message, "not available in this build (src/nonexistent/entry.ts is missing)");
    return true;
  });
  await assert.rejects(
    loadEntry("./parse.ts", "runNothing"),
    /src\/cli\/parse\.ts does not export runNothing\(\)/,
  );
  const f = await loadEntry<typeof integer>("./parse.ts", "integer");
  assert.equal(f(1, 9)("7"), 7);
});

test("integer and commaList parsers", () => {
  const p = integer(1, 1000);
  assert.equal(p("1_000"), 1000);
  assert.equal(p("1"), 1);
  for (const bad of ["0", "1001", "1.5", "abc", "", "1e3", "0x10"])
    assert.throws(() => p(bad), InvalidArgumentError, bad);
  assert.throws(() => integer(0, Number.MAX_SAFE_INTEGER)("9007199254740993"), InvalidArgumentError);
  assert.deepEqual(commaList(" a, b,,c "), ["a", "b", "c"]);
  assert.deepEqual(commaList(""), []);
});

test("output: JSON document with --json, an indented outline otherwise", () => {
  const value = {
    kind: "x",
    n: 3,
    big: 5n,
    empty: "",
    none: null,
    list: [1, 2],
    nested: {
      a: true,
      items: [
        { id: 1, tags: [] },
        { id: 2, sub: { k: "v" } },
      ],
    },
    blank: {},
  };
  let text = "";
  printResult(value, { json: true, out: (t) => (text += t) });
  assert.deepEqual(JSON.parse(text), { ...value, big: "5" });
  assert.equal(
    formatHuman(value),
    [
      "kind: x",
      "n: 3",
      "big: 5",
      'empty: ""',
      "none: -",
      "list: [1, 2]",
      "nested:",
      "  a: true",
      "  items:",
      "    - id: 1",
      "      tags: []",
      "    - id: 2",
      "      sub:",
      "        k: v",
      "blank: {}",
      "",
    ].join("\n"),
  );
  let human = "";
  printResult(["a", "b"], { out: (t) => (human += t) }, (v) => (v as string[]).join("\n"));
  assert.equal(human, "a\nb\n");
});
