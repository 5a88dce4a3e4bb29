/**
 * Interop with a generic gRPC tool: the `buf` binary from node_modules (`buf curl`, the grpcurl
 * equivalent) lists the services through server reflection and calls methods, over plain HTTP/2
 * (insecure test listener), a UNIX socket, and mutual TLS.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { allowAll } from "./authz.ts";
import { makeDevCertificates, readTlsFiles } from "./certs.ts";
import { FakeControlBackend } from "./fake-backend.ts";
import { type ControlServer, createControlServer } from "./server.ts";
import { recordingLogger, tempDir } from "./test-support.ts";

const run = promisify(execFile);
const buf = join(import.meta.dirname, "..", "..", "node_modules", ".bin", "buf");

/** Runs buf; returns stdout, or the exit code and output when it fails. */
async function bufCurl(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  try {
    const r = await run(buf, ["curl", "--protocol", "grpc", ...args], { timeout: 30_000 });
    return { ok: true, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

describe("buf curl against a running control server", () => {
  const dir = tempDir("buf-curl");
  const backend = new FakeControlBackend();
  let server: ControlServer;
  let tlsServer: ControlServer;
  let plain: string;
  let certs: ReturnType<typeof makeDevCertificates>;

  before(async () => {
    certs = makeDevCertificates({ dir: dir.path, hosts: ["127.0.0.1"], clients: ["orch"] });
    server = await createControlServer({
      backend,
      authz: allowAll("h", ["tester", "local"]),
      logger: recordingLogger(),
      listen: {
        tcp: { host: "127.0.0.1", port: 0, insecure: true, insecureIdentity: "tester" },
        unix: { path: join(dir.path, "c.sock") },
      },
    });
    const server127 = certs.servers["127.0.0.1"]!;
    tlsServer = await createControlServer({
      backend,
      authz: allowAll("h", ["orch"]),
      logger: recordingLogger(),
      listen: {
        tcp: {
          host: "127.0.0.1",
          port: 0,
          tls: readTlsFiles({ ca: certs.ca.cert, cert: server127.cert, key: server127.key }),
        },
      },
    });
    plain = `http://127.0.0.1:${server.tcp?.port}`;
  });

  after(async () => {
    await server.close();
    await tlsServer.close();
    dir.cleanup();
  });

  it("--list-methods through reflection lists the migration and health services", async () => {
    const r = await bufCurl(["--http2-prior-knowledge", "--list-methods", plain]);
    assert.ok(r.ok, r.stderr);
    const methods = r.stdout.trim().split("\n");
    for (const m of [
      "nvmig.v1.MigrationService/ListFunctions",
      "nvmig.v1.MigrationService/GetControllerState",
      "nvmig.v1.MigrationService/SetControllerState",
      "nvmig.v1.MigrationService/WatchEvents",
      "grpc.health.v1.Health/Check",
    ]) {
      assert.ok(methods.includes(m), `${m} missing from:\n${r.stdout}`);
    }
    assert.equal(methods.filter((m) => m.startsWith("nvmig.v1.MigrationService/")).length, 19);
  });

  it("calls DescribeFunction and Health/Check with JSON, and gets a gRPC error code for a miss", async () => {
    const d = await bufCurl([
      "--http2-prior-knowledge",
      "-d",
      '{"cntlid":2}',
      `${plain}/nvmig.v1.MigrationService/DescribeFunction`,
    ]);
    assert.ok(d.ok, d.stderr);
    const body = JSON.parse(d.stdout) as { function: { pciName: string; state: string } };
    assert.equal(body.function.pciName, "0000:01:00.1");
    assert.equal(body.function.state, "FUNCTION_STATE_RUNNING");
    assert.equal(backend.calls.at(-1)?.identity, "tester");

    const h = await bufCurl(["--http2-prior-knowledge", "-d", "{}", `${plain}/grpc.health.v1.Health/Check`]);
    assert.deepEqual(JSON.parse(h.stdout), { status: "SERVING" });

    const miss = await bufCurl([
      "--http2-prior-knowledge",
      "--unix-socket",
      join(dir.path, "c.sock"),
      "-d",
      '{"cntlid":9}',
      "http://localhost/nvmig.v1.MigrationService/DescribeFunction",
    ]);
    assert.equal(miss.ok, false);
    assert.deepEqual(JSON.parse(miss.stderr), { code: "not_found", message: "no function with cntlid 9" });
    assert.equal(backend.calls.at(-1)?.identity, "local");
  });

  it("over mutual TLS: works with a client certificate; without one even reflection is unauthenticated", async () => {
    const url = `https://127.0.0.1:${tlsServer.tcp?.port}`;
    const withCert = await bufCurl([
      "--cacert",
      certs.ca.cert,
      "--cert",
      certs.clients.orch!.cert,
      "--key",
      certs.clients.orch!.key,
      "-d",
      "{}",
      `${url}/nvmig.v1.MigrationService/ListFunctions`,
    ]);
    assert.ok(withCert.ok, withCert.stderr);
    assert.equal((JSON.parse(withCert.stdout) as { functions: unknown[] }).functions.length, 3);
    assert.equal(backend.calls.at(-1)?.identity, "orch");

    // For a reflection failure buf words UNAUTHENTICATED as "you are not authenticated" (+ a registry hint);
    // for a method call (schema from the local proto/ files) it prints the status as JSON.
    const noCert = await bufCurl(["--cacert", certs.ca.cert, "--list-methods", url]);
    assert.equal(noCert.ok, false);
    assert.match(noCert.stderr, /not authenticated/);
    const before = backend.calls.length;
    const noCertCall = await bufCurl([
      "--cacert",
      certs.ca.cert,
      "--schema",
      join(import.meta.dirname, "..", "..", "proto"),
      "-d",
      "{}",
      `${url}/nvmig.v1.MigrationService/ListFunctions`,
    ]);
    assert.equal(noCertCall.ok, false);
    assert.deepEqual(JSON.parse(noCertCall.stderr), {
      code: "unauthenticated",
      message: "no verified client certificate",
    });
    assert.equal(backend.calls.length, before);
  });
});
