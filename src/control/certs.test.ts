import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { makeDevCertificates } from "./certs.ts";
import { ControlError } from "./errors.ts";
import { identityFromCertificate } from "./identity.ts";
import { tempDir } from "./test-support.ts";

const cert = (path: string): X509Certificate => new X509Certificate(readFileSync(path));
const mode = (path: string): number => statSync(path).mode & 0o777;

test("makeDevCertificates writes a CA, per-host server and per-client certificates that chain to it", () => {
  const dir = tempDir("certs");
  try {
    const now = new Date("2030-06-01T00:00:00Z");
    const out = makeDevCertificates({
      dir: join(dir.path, "pki"),
      hosts: ["host-a", "10.1.2.3", "fd00::7"],
      clients: ["orch", "tenant-7"],
      now,
    });
    assert.equal(mode(join(dir.path, "pki")), 0o700);
    const ca = cert(out.ca.cert);
    assert.equal(ca.ca, true);
    assert.equal(mode(out.ca.key), 0o600);
    assert.equal(mode(out.ca.cert), 0o644);
    assert.ok(ca.verify(ca.publicKey), "CA is self-signed");

    const server = cert(out.servers["host-a"]!.cert);
    assert.equal(server.ca, false);
    assert.ok(server.checkIssued(ca) && server.verify(ca.publicKey));
    assert.equal(
      server.subjectAltName,
      "DNS:host-a, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
    );
    assert.equal(server.checkHost("host-a"), "host-a");
    assert.equal(server.checkIP("127.0.0.1"), "127.0.0.1");
    assert.equal(server.checkIP("::1"), "::1");
    assert.equal(new Date(server.validFrom).getTime(), now.getTime() - 3_600_000);
    assert.equal(new Date(server.validTo).getTime(), now.getTime() + 365 * 86_400_000);
    assert.equal(cert(out.servers["10.1.2.3"]!.cert).checkIP("10.1.2.3"), "10.1.2.3");
    assert.equal(cert(out.servers["fd00::7"]!.cert).checkIP("fd00::7"), "fd00::7");
    for (const paths of [...Object.values(out.servers), ...Object.values(out.clients)]) {
      assert.equal(mode(paths.key), 0o600, paths.key);
    }

    const client = cert(out.clients.orch!.cert);
    assert.ok(client.verify(ca.publicKey));
    assert.equal(client.subjectAltName, "URI:spiffe://nvmig/orch");
    assert.equal(client.subject, "O=nvmig\nCN=orch");
    assert.ok(client.keyUsage?.includes("1.3.6.1.5.5.7.3.2"), "clientAuth");
    assert.ok(server.keyUsage?.includes("1.3.6.1.5.5.7.3.1"), "serverAuth");

    // A second call reuses the CA: older certificates stay valid.
    const again = makeDevCertificates({ dir: join(dir.path, "pki"), hosts: ["host-b"], clients: [], now });
    assert.equal(cert(again.ca.cert).fingerprint256, ca.fingerprint256);
    assert.ok(cert(again.servers["host-b"]!.cert).verify(ca.publicKey));
    assert.ok(cert(again.servers["host-b"]!.cert).checkIssued(ca));
  } finally {
    dir.cleanup();
  }
});

test("OpenSSL accepts the chain for the TLS purposes (skipped when no openssl binary)", (t) => {
  if (spawnSync("openssl", ["version"]).status !== 0) {
    t.skip("no openssl binary");
    return;
  }
  const dir = tempDir("certs-openssl");
  try {
    const out = makeDevCertificates({ dir: dir.path, hosts: ["127.0.0.1"], clients: ["orch"] });
    const verify = (purpose: string, path: string): string =>
      spawnSync("openssl", ["verify", "-CAfile", out.ca.cert, "-purpose", purpose, path], {
        encoding: "utf8",
      }).stdout;
    assert.match(verify("sslserver", out.servers["127.0.0.1"]!.cert), /: OK/);
    assert.match(verify("sslclient", out.clients.orch!.cert), /: OK/);
    assert.doesNotMatch(verify("sslserver", out.clients.orch!.cert), /: OK/);
  } finally {
    dir.cleanup();
  }
});

test("bad names are refused before anything is written", () => {
  const dir = tempDir("certs-bad");
  try {
    for (const options of [
      { hosts: ["bad/host"], clients: [] },
      { hosts: [], clients: ["has space"] },
      { hosts: [], clients: [""] },
    ]) {
      assert.throws(
        () => makeDevCertificates({ dir: join(dir.path, "x"), ...options }),
        (e: unknown) => ControlError.is(e, "invalid-argument"),
      );
    }
    assert.throws(
      () => makeDevCertificates({ dir: dir.path, hosts: [], clients: [], validityDays: 0 }),
      /validityDays/,
    );
  } finally {
    dir.cleanup();
  }
});

test("identityFromCertificate: SAN URI spiffe://nvmig/<name> first, then CN, else null", () => {
  assert.equal(identityFromCertificate(undefined), null);
  const base = { subject: { CN: "cn-name" } } as unknown as Parameters<typeof identityFromCertificate>[0];
  assert.equal(identityFromCertificate(base), "cn-name");
  assert.equal(
    identityFromCertificate({ ...base!, subjectaltname: "DNS:x, URI:https://a/b, URI:spiffe://nvmig/orch" }),
    "orch",
  );
  assert.equal(identityFromCertificate({ ...base!, subjectaltname: "URI:spiffe://other/orch" }), "cn-name");
  assert.equal(identityFromCertificate({ ...base!, subject: { CN: "bad name" } } as never), null);
  assert.equal(identityFromCertificate({ ...base!, subject: { CN: ["first", "second"] } } as never), "first");
});
