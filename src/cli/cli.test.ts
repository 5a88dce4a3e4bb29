/**
 * The real `nvmig` command as a child process (bin/nvmig.mjs through tsx): help texts, exit codes,
 * one-line errors, `inspect` on files made by the library, `certs` into a temp dir.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { captureControllerState } from "../controller/migration/controller-state.ts";
import { TestHost } from "../controller/test-support.ts";
import { StreamWriter } from "../migration/stream/writer.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function nvmig(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/nvmig.mjs", ...args], {
      cwd: root,
      env: { ...process.env, NVMIG_DEBUG: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** One line on stderr, no stack frames. */
function assertOneLineError(r: Run, pattern: RegExp): void {
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
}

/** Option entries of a help text: each "  --opt ..." line joined with its continuation lines. */
function optionEntries(help: string): Map<string, string> {
  const section = help.split(/^Options:$/m)[1]?.split(/^\S/m)[0] ?? "";
  const entries = new Map<string, string>();
  let current: string | undefined;
  for (const line of section.split("\n")) {
    const m = /^ {2}(?:-\w, )?(--[\w-]+)/.exec(line);
    if (m !== null) {
      current = m[1]!;
      entries.set(current, line);
    } else if (current !== undefined && line.trim() !== "") {
      entries.set(current, `${entries.get(current)} ${line.trim()}`);
    }
  }
  return entries;
}

const commandOptions: Record<string, string[]> = {
  demo: ["--json"],
  bench: ["--json"],
  host: ["--config"],
  vm: [
    "--attach",
    "--json",
    "--ops",
    "--duration-ms",
    "--memory-mib",
    "--queues",
    "--queue-depth",
    "--block-bytes",
    "--read-percent",
    "--pattern",
    "--seed",
    "--no-verify",
    "--control",
    "--incoming",
    "--lba-first",
    "--lba-count",
  ],
  migrate: [
    "--from",
    "--to",
    "--function",
    "--vm",
    "--dest-control",
    "--report",
    "--lease-ms",
    "--path",
    "--max-downtime-ms",
    "--max-bandwidth",
    "--json",
  ],
  inspect: ["--json", "--max-records"],
  certs: ["--dir", "--hosts", "--clients", "--validity-days", "--json"],
};

describe("help", { concurrency: 4 }, () => {
  test("nvmig --help lists every command and the exit codes", async () => {
    const r = await nvmig(["--help"]);
    assert.equal(r.code, 0, r.stderr);
    for (const name of Object.keys(commandOptions)) assert.match(r.stdout, new RegExp(`^  ${name} `, "m"));
    assert.match(r.stdout, /Exit codes: 0 ok, 1 failure, 2 usage error/);
  });

  for (const [name, options] of Object.entries(commandOptions)) {
    test(`nvmig ${name} --help documents every option with its default (or required)`, async () => {
      const r = await nvmig([name, "--help"]);
      assert.equal(r.code, 0, r.stderr);
      const entries = optionEntries(r.stdout);
      entries.delete("--help");
      assert.deepEqual([...entries.keys()].sort(), [...options].sort());
      for (const [opt, text] of entries) assert.match(text, /default|required/, `${opt}: ${text}`);
      assert.match(r.stdout, /Example:\n {2}nvmig /);
    });
  }

  test("bench --help names every benchmark", async () => {
    const r = await nvmig(["bench", "--help"]);
    assert.equal(r.code, 0);
    for (const b of ["io", "migration", "vfio-user", "control", "all"])
      assert.ok(r.stdout.includes(`"${b}"`));
  });
});

test("an unknown option exits 2 with one line naming the command's --help", async () => {
  const r = await nvmig(["inspect", "--bogus", "x"]);
  assert.equal(r.code, 2, r.stderr);
  assertOneLineError(r, /^nvmig inspect: unknown option '--bogus'.*'nvmig inspect --help'/);
  assert.equal(r.stdout, "");
});

describe("inspect and certs on real files", { concurrency: 4 }, () => {
  let dir = "";
  let statePath = "";
  let streamPath = "";
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "nvmig-cli-"));
    const h = new TestHost();
    h.enable();
    await h.createIoQueuePair(1, 16, 1);
    await h.createIoQueuePair(2, 8, 2);
    h.controller.suspended = true;
    const blob = captureControllerState(h.controller);
    statePath = join(dir, "vf.state");
    writeFileSync(statePath, blob);
    writeFileSync(join(dir, "truncated.state"), blob.subarray(0, blob.byteLength - 4));
    const w = new StreamWriter({ formatUuid: "6e766d69-672d-7374-6174-652d76310000", userData: true });
    w.writeNamespaceData({ nsid: 1, slba: 0, nlb: 1, lbaBytes: 512 }, new Uint8Array(512).fill(7));
    w.writeControllerState(blob);
    w.end();
    const stream = w.read(w.pendingBytes);
    streamPath = join(dir, "vf.stream");
    writeFileSync(streamPath, stream);
    const corrupt = stream.slice();
    corrupt[100] = (corrupt[100] ?? 0) ^ 1;
    writeFileSync(join(dir, "corrupt.stream"), corrupt);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("inspect --json decodes a captured controller state", async () => {
    const r = await nvmig(["inspect", statePath, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      kind: string;
      header: { csattr: { suspended: boolean } };
      nvmeControllerState: {
        iosq: { iosqqid: number; entries: number }[];
        iocq: { iocqa: { iv: number } }[];
      };
      vendor: { valid: boolean };
    };
    assert.equal(out.kind, "tp4159-controller-state");
    assert.equal(out.header.csattr.suspended, true);
    assert.deepEqual(
      out.nvmeControllerState.iosq.map((q) => [q.iosqqid, q.entries]),
      [
        [1, 16],
        [2, 8],
      ],
    );
    assert.deepEqual(
      out.nvmeControllerState.iocq.map((q) => q.iocqa.iv),
      [1, 2],
    );
    assert.equal(out.vendor.valid, true);
  });

  test("inspect lists a stream's records and decodes its CONTROLLER_STATE (human output)", async () => {
    const r = await nvmig(["inspect", streamPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^kind: nvmig-migration-stream$/m);
    assert.match(r.stdout, /tagName: NAMESPACE_DATA/);
    assert.match(r.stdout, /tagName: CONTROLLER_STATE/);
    assert.match(r.stdout, /kind: tp4159-controller-state/);
    assert.match(r.stdout, /iosqqid: 2/);
  });

  test("inspect of a truncated state, a corrupt stream: exit 1, one line", async () => {
    const [t, c] = await Promise.all([
      nvmig(["inspect", join(dir, "truncated.state")]),
      nvmig(["inspect", join(dir, "corrupt.stream")]),
    ]);
    assert.equal(t.code, 1);
    assertOneLineError(t, /^nvmig inspect: .*truncated\.state: not a TP4159 controller state \(truncated\)/);
    assert.equal(c.code, 1);
    assertOneLineError(c, /^nvmig inspect: .*corrupt\.stream: device migration stream refused: crc-mismatch/);
  });

  test("certs writes the CA, server and client pairs and prints their paths", async () => {
    const out = join(dir, "certs");
    const r = await nvmig([
      "certs",
      "--dir",
      out,
      "--hosts",
      "hostA,127.0.0.1",
      "--clients",
      "orchestrator,vmm",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const files = r.stdout.trim().split("\n");
    assert.equal(files.length, 2 + 2 * 2 + 2 * 2);
    for (const f of files) assert.ok(existsSync(f), f);
    for (const name of ["ca.crt", "server-hostA.key", "client-vmm.crt"])
      assert.ok(files.includes(join(out, name)), name);
  });

  test("a library failure exits 1 with one line", async () => {
    const r = await nvmig(["certs", "--dir", join(dir, "bad"), "--hosts", "bad host!"]);
    assert.equal(r.code, 1);
    assertOneLineError(r, /^nvmig certs: .*bad host!/);
  });
});
