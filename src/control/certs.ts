/**
 * Development certificates for the control plane's mutual TLS, made with Node's `crypto` only (no
 * openssl binary, no dependency): ECDSA P-256 keys, X.509 v3 certificates encoded by der.ts and
 * signed with SHA-256.
 *
 *   dir/ca.crt                    development CA (CN "nvmig development CA"), pathlen 0
 *   dir/ca.key                    its key (PKCS#8 PEM, mode 0600)
 *   dir/server-<host>.crt|.key    per host: CN <host>; SAN <host> + localhost + 127.0.0.1 + ::1;
 *                                 extendedKeyUsage serverAuth
 *   dir/client-<name>.crt|.key    per client: CN <name>; SAN URI spiffe://nvmig/<name>;
 *                                 extendedKeyUsage clientAuth  (identity = <name>, see identity.ts)
 *
 * An existing ca.crt + ca.key in `dir` is reused, so adding a host later keeps every earlier
 * certificate valid. Keys are written with mode 0600, certificates 0644, the directory (if created)
 * 0700. For development and tests only: real deployments bring their own PKI.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isIPv4, isIPv6 } from "node:net";
import { join } from "node:path";
import * as der from "./der.ts";
import { ControlError } from "./errors.ts";
import { IDENTITY_PATTERN, SPIFFE_PREFIX } from "./identity.ts";

export interface DevCertificateOptions {
  /** Output directory; created (mode 0700) if missing. */
  dir: string;
  /** Host names or IP addresses, one server certificate each. Names: [A-Za-z0-9._-], or an IP. */
  hosts: readonly string[];
  /** Client identities, one client certificate each. Names: 1..128 of [A-Za-z0-9._-]. */
  clients: readonly string[];
  /** Validity of new certificates, days. Default 365; range 1..3650. */
  validityDays?: number;
  /** Issue time (tests). Default: now. Certificates are valid from one hour before it. */
  now?: Date;
}

export interface CertKeyPaths {
  cert: string;
  key: string;
}

export interface DevCertificates {
  ca: CertKeyPaths;
  servers: Record<string, CertKeyPaths>;
  clients: Record<string, CertKeyPaths>;
}

/** PEM contents for a TLS endpoint (what createControlServer / connectControl take). */
export interface TlsMaterial {
  /** CA certificate(s) that peers must chain to, PEM. */
  ca: Buffer | string;
  /** Own certificate chain, PEM. */
  cert: Buffer | string;
  /** Own private key, PEM. */
  key: Buffer | string;
}

/** Reads PEM files into a TlsMaterial. */
export function readTlsFiles(paths: { ca: string; cert: string; key: string }): TlsMaterial {
  return { ca: readFileSync(paths.ca), cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
}

const OID = {
  commonName: "2.5.4.3",
  organizationName: "2.5.4.10",
  ecPublicKey: "1.2.840.10045.2.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

const HOST_PATTERN = /^[A-Za-z0-9._-]{1,253}$/;
const DAY_MS = 86_400_000;

interface Issuer {
  key: KeyObject;
  subjectDer: Uint8Array;
  keyId: Uint8Array;
}

type SanEntry = { dns: string } | { ip: string } | { uri: string };

function name(commonName: string): Uint8Array {
  return der.sequence(
    der.set(der.sequence(der.oid(OID.organizationName), der.utf8String("nvmig"))),
    der.set(der.sequence(der.oid(OID.commonName), der.utf8String(commonName))),
  );
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? der.sequence(der.oid(id), der.boolean(true), der.octetString(value))
    : der.sequence(der.oid(id), der.octetString(value));
}

function ipBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split("."), Number);
  if (!isIPv6(ip) || ip.includes("."))
    throw new ControlError("invalid-argument", `unsupported IP address ${ip}`);
  const [head = "", tail] = ip.split("::");
  const groups = (s: string): number[] => (s === "" ? [] : s.split(":").map((g) => Number.parseInt(g, 16)));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  return Uint8Array.from(all.flatMap((g) => [g >> 8, g & 0xff]));
}

function san(entries: readonly SanEntry[]): Uint8Array {
  const enc = new TextEncoder();
  return der.sequence(
    ...entries.map((e) =>
      "dns" in e
        ? der.implicitPrimitive(2, enc.encode(e.dns))
        : "uri" in e
          ? der.implicitPrimitive(6, enc.encode(e.uri))
          : der.implicitPrimitive(7, ipBytes(e.ip)),
    ),
  );
}

function keyIdOf(spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(spkiDer).digest());
}

function serialNumber(): bigint {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return BigInt(`0x${bytes.toString("hex")}`);
}

function pem(label: string, bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)?.join("\n") ?? ""}\n-----END ${label}-----\n`;
}

interface CertificateSpec {
  subject: string;
  publicKey: KeyObject;
  /** Self-signed when undefined (the CA). */
  issuer: Issuer | undefined;
  signingKey: KeyObject;
  isCa: boolean;
  extKeyUsage?: string;
  sanEntries?: readonly SanEntry[];
  notBefore: Date;
  notAfter: Date;
}

function certificate(spec: CertificateSpec): { der: Uint8Array; subjectDer: Uint8Array; keyId: Uint8Array } {
  const spki = new Uint8Array(spec.publicKey.export({ type: "spki", format: "der" }));
  const keyId = keyIdOf(spki);
  const subjectDer = name(spec.subject);
  const sigAlg = der.sequence(der.oid(OID.ecdsaWithSha256));
  const extensions: Uint8Array[] = [
    extension(
      OID.basicConstraints,
      true,
      spec.isCa ? der.sequence(der.boolean(true), der.integer(0n)) : der.sequence(),
    ),
    // keyUsage: CA = keyCertSign (bit 5) | cRLSign (bit 6); leaf = digitalSignature (bit 0).
    extension(
      OID.keyUsage,
      true,
      spec.isCa ? der.bitString(Uint8Array.of(0x06), 1) : der.bitString(Uint8Array.of(0x80), 7),
    ),
    extension(OID.subjectKeyIdentifier, false, der.octetString(keyId)),
    extension(
      OID.authorityKeyIdentifier,
      false,
      der.sequence(der.implicitPrimitive(0, spec.issuer?.keyId ?? keyId)),
    ),
  ];
  if (spec.extKeyUsage !== undefined) {
    extensions.push(extension(OID.extKeyUsage, false, der.sequence(der.oid(spec.extKeyUsage))));
  }
  if (spec.sanEntries !== undefined)
    extensions.push(extension(OID.subjectAltName, false, san(spec.sanEntries)));
  const tbs = der.sequence(
    der.explicit(0, der.integer(2n)),
    der.integer(serialNumber()),
    sigAlg,
    spec.issuer?.subjectDer ?? subjectDer,
    der.sequence(der.time(spec.notBefore), der.time(spec.notAfter)),
    subjectDer,
    spki,
    der.explicit(3, der.sequence(...extensions)),
  );
  const signature = sign("sha256", tbs, spec.signingKey);
  return { der: der.sequence(tbs, sigAlg, der.bitString(new Uint8Array(signature))), subjectDer, keyId };
}

/** The subject Name (DER) of a certificate: the 6th element of its TBSCertificate. */
function subjectOf(certDer: Uint8Array): Uint8Array {
  const cert = der.readElement(certDer, 0);
  const tbs = der.readElement(certDer, cert.contentStart);
  let at = tbs.contentStart;
  for (let i = 0; i < 5; i++) at = der.readElement(certDer, at).end;
  const subject = der.readElement(certDer, at);
  return certDer.subarray(subject.start, subject.end);
}

function writeFile(path: string, contents: string, mode: number): void {
  writeFileSync(path, contents, { mode });
  chmodSync(path, mode);
}

function newKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
}

function privatePem(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

function loadOrCreateCa(dir: string, notBefore: Date): { issuer: Issuer; paths: CertKeyPaths } {
  const paths = { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") };
  if (existsSync(paths.cert) && existsSync(paths.key)) {
    const cert = new X509Certificate(readFileSync(paths.cert));
    const key = createPrivateKey(readFileSync(paths.key));
    const spki = new Uint8Array(cert.publicKey.export({ type: "spki", format: "der" }));
    return { issuer: { key, subjectDer: subjectOf(new Uint8Array(cert.raw)), keyId: keyIdOf(spki) }, paths };
  }
  const { publicKey, privateKey } = newKeyPair();
  const ca = certificate({
    subject: "nvmig development CA",
    publicKey,
    issuer: undefined,
    signingKey: privateKey,
    isCa: true,
    notBefore,
    notAfter: new Date(notBefore.getTime() + 10 * 365 * DAY_MS),
  });
  writeFile(paths.key, privatePem(privateKey), 0o600);
  writeFile(paths.cert, pem("CERTIFICATE", ca.der), 0o644);
  return { issuer: { key: privateKey, subjectDer: ca.subjectDer, keyId: ca.keyId }, paths };
}

/** Writes (or reuses) a development CA and issues server and client certificates. See the file head. */
export function makeDevCertificates(options: DevCertificateOptions): DevCertificates {
  const validityDays = options.validityDays ?? 365;
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 3650) {
    throw new ControlError("invalid-argument", `validityDays ${validityDays} outside 1..3650`);
  }
  for (const host of options.hosts) {
    if (!HOST_PATTERN.test(host) && !isIPv6(host)) {
      throw new ControlError(
        "invalid-argument",
        `host name ${JSON.stringify(host)} is not [A-Za-z0-9._-] or an IP`,
      );
    }
  }
  for (const client of options.clients) {
    if (!IDENTITY_PATTERN.test(client)) {
      throw new ControlError(
        "invalid-argument",
        `client name ${JSON.stringify(client)} is not 1..128 of [A-Za-z0-9._-]`,
      );
    }
  }
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now.getTime() + validityDays * DAY_MS);
  if (!existsSync(options.dir)) mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const { issuer, paths: caPaths } = loadOrCreateCa(options.dir, notBefore);

  const issue = (
    file: string,
    subject: string,
    extKeyUsage: string,
    sanEntries: SanEntry[],
  ): CertKeyPaths => {
    const { publicKey, privateKey } = newKeyPair();
    const cert = certificate({
      subject,
      publicKey,
      issuer,
      signingKey: issuer.key,
      isCa: false,
      extKeyUsage,
      sanEntries,
      notBefore,
      notAfter,
    });
    const paths = { cert: join(options.dir, `${file}.crt`), key: join(options.dir, `${file}.key`) };
    writeFile(paths.key, privatePem(privateKey), 0o600);
    writeFile(paths.cert, pem("CERTIFICATE", cert.der), 0o644);
    return paths;
  };

  const servers: Record<string, CertKeyPaths> = {};
  for (const host of options.hosts) {
    const entries: SanEntry[] = [{ dns: "localhost" }, { ip: "127.0.0.1" }, { ip: "::1" }];
    if (isIPv4(host) || isIPv6(host)) {
      if (host !== "127.0.0.1" && host !== "::1") entries.unshift({ ip: host });
    } else if (host !== "localhost") {
      entries.unshift({ dns: host });
    }
    servers[host] = issue(`server-${host.replaceAll(":", "_")}`, host, OID.serverAuth, entries);
  }
  const clients: Record<string, CertKeyPaths> = {};
  for (const client of options.clients) {
    clients[client] = issue(`client-${client}`, client, OID.clientAuth, [
      { uri: `${SPIFFE_PREFIX}${client}` },
    ]);
  }
  return { ca: caPaths, servers, clients };
}
