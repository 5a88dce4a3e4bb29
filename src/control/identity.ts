/**
 * Who is calling. On a TLS listener the identity comes from the client certificate, which the TLS
 * layer has already verified against the configured CA:
 *
 *   1. the first SAN URI of the form `spiffe://nvmig/<name>`  →  `<name>`
 *   2. otherwise the subject common name (CN)                 →  the CN
 *   3. neither (or no verified certificate)                   →  unauthenticated
 *
 * `makeDevCertificates` (certs.ts) writes client certificates carrying both, with the same name.
 * On a UNIX-socket listener the identity is the listener's configured local identity (the socket
 * file is mode 0600, so only its owner and root can connect); on an insecure test TCP listener it is
 * the configured test identity.
 */
import type { PeerCertificate } from "node:tls";
import type { ServerInterceptingCallInterface } from "@grpc/grpc-js";

/** What grpc-js knows about a call's transport security (its AuthContext type is not exported). */
export type AuthContext = ReturnType<ServerInterceptingCallInterface["getAuthContext"]>;

export const SPIFFE_PREFIX = "spiffe://nvmig/";

/** Identity names: 1..128 of [A-Za-z0-9._-] (also the names certs.ts accepts for files). */
export const IDENTITY_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** The identity of a verified peer certificate, or null if it carries none. */
export function identityFromCertificate(cert: PeerCertificate | undefined): string | null {
  if (cert === undefined) return null;
  for (const entry of (cert.subjectaltname ?? "").split(", ")) {
    if (!entry.startsWith("URI:")) continue;
    const uri = entry.slice("URI:".length);
    if (uri.startsWith(SPIFFE_PREFIX)) {
      const name = uri.slice(SPIFFE_PREFIX.length);
      if (IDENTITY_PATTERN.test(name)) return name;
    }
  }
  const cn: unknown = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  return typeof name === "string" && IDENTITY_PATTERN.test(name) ? name : null;
}
