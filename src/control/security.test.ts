/**
 * Security of the control plane through REAL TLS and UNIX sockets: mutual TLS identities, what a
 * client without (or with a foreign) certificate sees, per-function authorization with the backend
 * untouched on refusal, the 0600 socket file, and the insecure test listener's loud warning.
 */
import assert from "node:assert/strict";
import { existsSync, lstatSync, writeFileSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { credentials, Metadata } from "@grpc/grpc-js";
import { HealthClient } from "../gen/grpc/health/v1/health.ts";
import * as pb from "../gen/nvmig/v1/migration.ts";
import type { AuthzPolicy } from "./authz.ts";
import { allowAll } from "./authz.ts";
import { type ControlClient, connectControl } from "./client.ts";
import { fromGrpcError } from "./errors.ts";
import { FakeControlBackend } from "./fake-backend.ts";
import { type ControlServer, createControlServer } from "./server.ts";
import { chunkControllerState } from "./state-chunks.ts";
import {
  collect,
  makeTestPki,
  recordingLogger,
  rejectsWith,
  type TestPki,
  tempDir,
  until,
} from "./test-support.ts";

/** A ListFunctions through a bare generated stub with the given channel credentials. */
function rawListFunctions(target: string, creds: ReturnType<typeof credentials.createSsl>): Promise<unknown> {
  const raw = new pb.MigrationServiceClient(target, creds);
  return new Promise((resolve, reject) => {
    raw.listFunctions({}, new Metadata(), { deadline: Date.now() + 10_000 }, (error, response) => {
      raw.close();
      if (error) reject(fromGrpcError(error));
      else resolve(response);
    });
  });
}

const policy: AuthzPolicy = {
  host: "host-a",
  rules: [
    { identity: "orch", hosts: "*", functions: "*" },
    { identity: "tenant", hosts: ["host-a"], functions: [1] },
    { identity: "tenant", hosts: ["host-b"], functions: [2] },
    { identity: "stranger", hosts: ["host-b"], functions: "*" },
  ],
};

describe("mutual TLS and authorization", () => {
  const dir = tempDir("security");
  const backend = new FakeControlBackend();
  const logger = recordingLogger();
  let pki: TestPki;
  let server: ControlServer;
  let target: string;
  const clients: ControlClient[] = [];
  const as = (name: string): ControlClient => {
    const c = connectControl({ target, tls: pki.client(name) });
    clients.push(c);
    return c;
  };

  before(async () => {
    pki = makeTestPki(dir.path, ["orch", "tenant", "stranger"]);
    server = await createControlServer({
      backend,
      authz: policy,
      logger,
      listen: { tcp: { host: "127.0.0.1", port: 0, tls: pki.server } },
    });
    target = `127.0.0.1:${server.tcp?.port}`;
  });

  after(async () => {
    for (const c of clients) c.close();
    await server.close();
    dir.cleanup();
  });

  it("a client certificate from our CA works and names the caller (SAN URI spiffe://nvmig/orch)", async () => {
    assert.equal((await as("orch").listFunctions()).length, 3);
    assert.equal(backend.calls.at(-1)?.identity, "orch");
  });

  it("no client certificate: the TLS handshake completes and every call is UNAUTHENTICATED", async () => {
    const before = backend.calls.length;
    await rejectsWith(
      rawListFunctions(target, credentials.createSsl(pki.caPem)),
      "unauthenticated",
      /certificate/,
    );
    // Health is behind the same gate (reflection too: see buf-curl.test.ts).
    const health = new HealthClient(target, credentials.createSsl(pki.caPem));
    const healthError = await new Promise<unknown>((resolve) => {
      health.check({ service: "" }, (error) => resolve(error));
    });
    health.close();
    assert.equal(fromGrpcError(healthError).code, "unauthenticated");
    assert.equal(backend.calls.length, before);
    assert.ok(logger.events().includes("control.unauthenticated"));
  });

  it("a client certificate from another CA is UNAUTHENTICATED; the backend is not called", async () => {
    const before = backend.calls.length;
    const foreign = connectControl({ target, tls: pki.foreignClient });
    clients.push(foreign);
    await rejectsWith(foreign.listFunctions(), "unauthenticated");
    await rejectsWith(foreign.suspend({ cntlid: 1, suspendType: "suspend" }), "unauthenticated");
    assert.equal(backend.calls.length, before);
  });

  it("a server certificate that does not chain to the client's CA is UNAVAILABLE at the client", async () => {
    const c = connectControl({ target, tls: { ...pki.client("orch"), ca: pki.foreignClient.cert } });
    clients.push(c);
    await rejectsWith(c.listFunctions({ deadlineMs: 10_000 }), "unavailable");
  });

  it("identity allowed for function 1 calling function 2 → PERMISSION_DENIED, backend never called", async () => {
    const tenant = as("tenant");
    assert.equal((await tenant.describeFunction(1)).function.cntlid, 1);
    const before = backend.calls.length;
    const state = new Uint8Array(100).fill(1);
    const denied: Array<[string, Promise<unknown>]> = [
      ["describe", tenant.describeFunction(2)],
      ["suspend", tenant.suspend({ cntlid: 2, suspendType: "suspend" })],
      ["resume", tenant.resume({ cntlid: 2 })],
      ["reset", tenant.resetFunction({ cntlid: 2 })],
      ["get state", collect(tenant.getControllerState({ cntlid: 2 }))],
      ["set state", tenant.setControllerState({ cntlid: 2 }, chunkControllerState(state, 10))],
      ["logging", tenant.startUserDataLogging(2)],
      ["changes", collect(tenant.streamChangedLbaRanges(2))],
      [
        "dirty",
        tenant.startDirtyTracking({
          cntlid: 2,
          ranges: [{ iova: 0n, lengthBytes: 4096n }],
          pageSizeBytes: 4096n,
        }),
      ],
      ["report", tenant.reportDirtyPages({ cntlid: 2, iova: 0n, lengthBytes: 4096n, pageSizeBytes: 4096n })],
      ["lease", tenant.acquireLease({ cntlid: 2 })],
      ["read ns", collect(tenant.readNamespaceData({ cntlid: 2, nsid: 1, ranges: [{ slba: 0n, nlb: 0 }] }))],
      [
        "write ns",
        tenant.writeNamespaceData({ cntlid: 2, nsid: 1 }, [{ slba: 0n, data: new Uint8Array(512) }]),
      ],
      ["watch", collect(tenant.watchEvents({ cntlids: [1, 2] }))],
    ];
    for (const [name, call] of denied) {
      const e = await rejectsWith(call, "permission-denied", /tenant may not act on function 2/).catch(
        (err: unknown) => {
          throw new Error(`${name}: ${String(err)}`);
        },
      );
      assert.equal(e.grpcStatus, 7, name);
    }
    assert.equal(backend.calls.length, before, "no backend call for a denied request");
    assert.equal(backend.states.has(2), false);
    assert.ok(logger.events().includes("control.permission-denied"));
  });

  it("a restricted identity lists and watches only its functions", async () => {
    const tenant = as("tenant");
    assert.deepEqual(
      (await tenant.listFunctions()).map((f) => f.cntlid),
      [1],
    );
    const events = tenant.watchEvents()[Symbol.asyncIterator]();
    const first = events.next();
    await until(() => backend.watcherCount === 1);
    assert.deepEqual(backend.calls.at(-1)?.params, { cntlids: [1] });
    backend.emit({ kind: "async-event", cntlid: 2, timeUnixMs: 5, aet: 1, aei: 1, lid: 2 });
    backend.emit({ kind: "async-event", cntlid: 1, timeUnixMs: 6, aet: 1, aei: 1, lid: 2 });
    assert.equal((await first).value?.cntlid, 1);
    await events.return?.();
    await until(() => backend.watcherCount === 0);
  });

  it("an identity with no rule for this host is denied even ListFunctions", async () => {
    const before = backend.calls.length;
    await rejectsWith(as("stranger").listFunctions(), "permission-denied", /no access to host host-a/);
    await rejectsWith(collect(as("stranger").watchEvents()), "permission-denied");
    assert.equal(backend.calls.length, before);
  });
});

describe("TLS with rejectUnverifiedAtHandshake", () => {
  it("a client without a certificate fails the handshake and sees UNAVAILABLE", async () => {
    const dir = tempDir("security-strict");
    const pki = makeTestPki(dir.path, ["orch"]);
    const backend = new FakeControlBackend();
    const server = await createControlServer({
      backend,
      authz: allowAll("h", ["orch"]),
      logger: recordingLogger(),
      listen: {
        tcp: { host: "127.0.0.1", port: 0, tls: { ...pki.server, rejectUnverifiedAtHandshake: true } },
      },
    });
    const target = `127.0.0.1:${server.tcp?.port}`;
    try {
      await rejectsWith(rawListFunctions(target, credentials.createSsl(pki.caPem)), "unavailable");
      const foreign = connectControl({ target, tls: pki.foreignClient });
      await rejectsWith(foreign.listFunctions(), "unavailable");
      foreign.close();
      const good = connectControl({ target, tls: pki.client("orch") });
      assert.equal((await good.listFunctions()).length, 3);
      good.close();
      assert.deepEqual(
        backend.calls.map((c) => c.identity),
        ["orch"],
      );
    } finally {
      await server.close();
      dir.cleanup();
    }
  });
});

describe("UNIX socket and insecure listeners", () => {
  it("creates the socket with mode 0600, names the peer with the local identity, removes it on close", async () => {
    const dir = tempDir("security-unix");
    const path = `${dir.path}/agent.sock`;
    const backend = new FakeControlBackend();
    const server = await createControlServer({
      backend,
      authz: allowAll("h", ["ops"]),
      logger: recordingLogger(),
      listen: { unix: { path, identity: "ops" } },
    });
    try {
      const stat = lstatSync(path);
      assert.ok(stat.isSocket());
      assert.equal(stat.mode & 0o777, 0o600);
      const c = connectControl({ target: `unix:${path}` });
      await c.describeFunction(1);
      c.close();
      assert.equal(backend.calls.at(-1)?.identity, "ops");
    } finally {
      await server.close();
    }
    assert.equal(existsSync(path), false);
    dir.cleanup();
  });

  it("replaces a stale socket file, refuses a live socket and a non-socket file", async () => {
    const dir = tempDir("security-stale");
    const stale = `${dir.path}/stale.sock`;
    const live = `${dir.path}/live.sock`;
    const plain = `${dir.path}/plain.sock`;
    // A stale socket: bound then closed without unlinking (as after a crash).
    const holder = createNetServer();
    await new Promise<void>((r) => holder.listen(live, r));
    const { spawnSync } = await import("node:child_process");
    spawnSync(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`,
    ]);
    writeFileSync(plain, "not a socket");
    const options = (path: string) => ({
      backend: new FakeControlBackend(),
      authz: allowAll("h", ["local"]),
      logger: recordingLogger(),
      listen: { unix: { path } },
    });
    try {
      assert.ok(lstatSync(stale).isSocket(), "the child left a stale socket behind");
      const server = await createControlServer(options(stale));
      assert.equal(lstatSync(stale).mode & 0o777, 0o600);
      await server.close();
      await rejectsWith(createControlServer(options(live)), "failed-precondition", /in use/);
      await rejectsWith(createControlServer(options(plain)), "failed-precondition", /not a socket/);
    } finally {
      holder.close();
      dir.cleanup();
    }
  });

  it("an insecure TCP listener works only when asked for, and says so loudly", async () => {
    await rejectsWith(
      createControlServer({
        backend: new FakeControlBackend(),
        authz: allowAll("h", []),
        logger: recordingLogger(),
        listen: { tcp: { host: "127.0.0.1", port: 0 } },
      }),
      "invalid-argument",
      /exactly one of `tls` or `insecure: true`/,
    );
    const logger = recordingLogger();
    const backend = new FakeControlBackend();
    const server = await createControlServer({
      backend,
      authz: allowAll("h", ["tester"]),
      logger,
      listen: { tcp: { host: "127.0.0.1", port: 0, insecure: true, insecureIdentity: "tester" } },
    });
    try {
      const warning = logger.lines.find((l) => l.fields.event === "control.insecure-listener");
      assert.equal(warning?.level, "warn");
      assert.match(warning?.message ?? "", /INSECURE/);
      const c = connectControl({ target: `127.0.0.1:${server.tcp?.port}`, insecure: true });
      assert.equal((await c.listFunctions()).length, 3);
      c.close();
      assert.equal(backend.calls.at(-1)?.identity, "tester");
      assert.throws(() => connectControl({ target: "127.0.0.1:1" }), /needs `tls`/);
    } finally {
      await server.close();
    }
  });
});
