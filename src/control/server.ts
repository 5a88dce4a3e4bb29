/**
 * The control server: the MigrationService (service.ts) + grpc.health.v1.Health (health.ts) +
 * server reflection (reflection.ts), served on a TCP listener, a UNIX-socket listener, or both.
 * Each listener is its own grpc-js Server, so each knows how to name its callers:
 *
 *   TCP + TLS (default)  mutual TLS: the client must present a certificate chaining to `tls.ca`;
 *                        identity = its spiffe://nvmig/<name> SAN URI, else its CN (identity.ts).
 *                        Unverified clients: by default the handshake completes and EVERY call
 *                        (health and reflection included) ends with UNAUTHENTICATED before any
 *                        handler runs; with `rejectUnverifiedAtHandshake` the TLS handshake itself
 *                        fails and the client sees UNAVAILABLE.
 *   UNIX socket          the socket file is mode 0600 from the moment it appears (bound in a private
 *                        0700 directory, chmod-ed, then renamed into place); every peer is the
 *                        configured local identity.
 *   TCP insecure         tests only (`insecure: true`), logged as a warning; every peer is the
 *                        configured test identity.
 *
 * Then authorization (authz.ts) decides per function. Sequence of one call:
 *
 *   client ── HTTP/2 (+TLS) ──► listener ──► authn interceptor ──► handler (checks, authz)
 *                                              │ no identity            │ denied / invalid
 *                                              ▼                        ▼
 *                                        UNAUTHENTICATED     PERMISSION_DENIED / INVALID_ARGUMENT
 *                                                                       │ ok
 *                                                                       ▼
 *                                                            ControlBackend method ──► status
 *
 * Compatibility: the wire contract is proto/nvmig/v1/migration.proto (see its rule).
 */
import { chmodSync, existsSync, lstatSync, mkdtempSync, renameSync, rmdirSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import {
  experimental,
  status as GrpcStatus,
  ResponderBuilder,
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptor,
  ServerListenerBuilder,
} from "@grpc/grpc-js";
import { HealthService } from "../gen/grpc/health/v1/health.ts";
import { MigrationServiceService } from "../gen/nvmig/v1/migration.ts";
import type { AuthzPolicy } from "./authz.ts";
import type { ControlBackend } from "./backend.ts";
import type { TlsMaterial } from "./certs.ts";
import { ControlError } from "./errors.ts";
import { HealthStatusTable, healthHandlers } from "./health.ts";
import { type AuthContext, IDENTITY_PATTERN, identityFromCertificate } from "./identity.ts";
import { DEFAULT_MAX_CONTROLLER_STATE_BYTES } from "./limits.ts";
import { type ControlLogger, defaultControlLogger } from "./logger.ts";
import { createReflectionService } from "./reflection.ts";
import { createMigrationService, type IdentityResolver } from "./service.ts";

/** Full name of the migration service (health status key, reflection). */
export const MIGRATION_SERVICE_NAME = "nvmig.v1.MigrationService";

export interface TlsServerOptions extends TlsMaterial {
  /**
   * Abort the TLS handshake when the client sends no certificate or one that does not chain to `ca`.
   * Default false: the handshake completes and every call ends with UNAUTHENTICATED (a clear status
   * for the client). No RPC runs for such a client either way.
   */
  rejectUnverifiedAtHandshake?: boolean;
}

export interface TcpListenOptions {
  /** Address to bind, e.g. "127.0.0.1", "::", "0.0.0.0". */
  host: string;
  /** Port; 0 = pick a free one (read it back from `ControlServer.tcp.port`). */
  port: number;
  /** Mutual TLS material. Required unless `insecure` is true. */
  tls?: TlsServerOptions;
  /** Plain-text HTTP/2, NO authentication — tests only. Default false. Logged as a warning. */
  insecure?: boolean;
  /** Identity given to every caller of an insecure listener. Default "insecure-test". */
  insecureIdentity?: string;
}

export interface UnixListenOptions {
  /** Socket path (at most 107 bytes). A stale socket there is replaced; a live one is an error. */
  path: string;
  /** Identity given to every caller (they passed the 0600 file mode). Default "local". */
  identity?: string;
}

export interface ControlServerOptions {
  backend: ControlBackend;
  /** At least one listener. */
  listen: { tcp?: TcpListenOptions; unix?: UnixListenOptions };
  authz: AuthzPolicy;
  /** Default: pino on stderr (see logger.ts). */
  logger?: ControlLogger;
  /** Largest controller state SetControllerState accepts, bytes. Default 64 MiB. */
  maxControllerStateBytes?: number;
}

export interface ControlServer {
  /** The bound TCP address (port resolved), if a TCP listener was requested. */
  readonly tcp: { host: string; port: number } | undefined;
  /** The UNIX socket path, if a UNIX listener was requested. */
  readonly unixPath: string | undefined;
  /** Health statuses ("" and MIGRATION_SERVICE_NAME start SERVING). */
  readonly health: HealthStatusTable;
  /**
   * Stops: health → NOT_SERVING, every call's context signal fires, handlers get `graceMs` (default
   * 2000) to finish, then remaining calls are cancelled; the socket file is removed. Idempotent.
   */
  close(graceMs?: number): Promise<void>;
}

const MAX_UNIX_PATH_BYTES = 107;

/**
 * One provider object serving both CA and identity: grpc-js 1.14's
 * createCertificateProviderServerCredentials passes its two provider parameters to the constructor
 * in swapped order, so the same object goes in both. Listeners are called in a microtask because
 * grpc-js registers its own watcher only after adding the provider listeners (a synchronous call
 * would be missed and every connection dropped); the microtask still runs before the socket listens.
 */
function staticCertificateProvider(tls: TlsMaterial): experimental.CertificateProvider {
  const ca = { caCertificate: Buffer.from(tls.ca) };
  const identity = { certificate: Buffer.from(tls.cert), privateKey: Buffer.from(tls.key) };
  return {
    addCaCertificateListener: (listener) => queueMicrotask(() => listener(ca)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (listener) => queueMicrotask(() => listener(identity)),
    removeIdentityCertificateListener: () => {},
  };
}

/** Refuses calls without an identity before any handler (ours, health, reflection) runs. */
function authenticationInterceptor(resolve: IdentityResolver, logger: ControlLogger): ServerInterceptor {
  return (method, call) => {
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (resolve(call.getAuthContext()) === null) {
          logger.warn(
            { event: "control.unauthenticated", method: method.path, peer: call.getPeer() },
            "call without a verified client certificate refused",
          );
          call.sendStatus({ code: GrpcStatus.UNAUTHENTICATED, details: "no verified client certificate" });
        } else {
          next(metadata);
        }
      })
      .build();
    return new ServerInterceptingCall(
      call,
      new ResponderBuilder().withStart((next) => next(listener)).build(),
    );
  };
}

const tlsIdentity: IdentityResolver = (auth: AuthContext) =>
  auth.transportSecurityType === "ssl" ? identityFromCertificate(auth.sslPeerCertificate) : null;

function checkIdentityName(what: string, name: string): string {
  if (!IDENTITY_PATTERN.test(name)) {
    throw new ControlError(
      "invalid-argument",
      `${what} ${JSON.stringify(name)} is not 1..128 of [A-Za-z0-9._-]`,
    );
  }
  return name;
}

function bind(server: Server, address: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => {
      if (error)
        reject(
          new ControlError("unavailable", `cannot listen on ${address}: ${error.message}`, { cause: error }),
        );
      else resolve(port);
    });
  });
}

/** Resolves true if something accepts connections on the UNIX socket `path`. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Binds `server` on `path` so that the socket is never reachable with a mode other than 0600. */
async function bindUnixSocket(server: Server, path: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) {
    throw new ControlError(
      "invalid-argument",
      `UNIX socket path longer than ${MAX_UNIX_PATH_BYTES} bytes: ${path}`,
    );
  }
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) {
      throw new ControlError("failed-precondition", `${path} exists and is not a socket`);
    }
    if (await socketIsLive(path))
      throw new ControlError("failed-precondition", `${path} is in use by a live server`);
    rmSync(path, { force: true });
  }
  // mkdtemp creates the directory with mode 0700: nobody else can reach the socket inside it.
  const privateDir = mkdtempSync(join(dirname(path), ".ctl-"));
  const staging = join(privateDir, "s");
  try {
    if (Buffer.byteLength(staging) > MAX_UNIX_PATH_BYTES) {
      throw new ControlError(
        "invalid-argument",
        `UNIX socket directory path too long for staging: ${staging}`,
      );
    }
    await bind(server, `unix:${staging}`, ServerCredentials.createInsecure());
    chmodSync(staging, 0o600);
    renameSync(staging, path);
  } finally {
    rmSync(staging, { force: true });
    rmdirSync(privateDir);
  }
}

/** Starts the control server on the requested listeners. See the file head for the security model. */
export async function createControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { tcp, unix } = options.listen;
  if (tcp === undefined && unix === undefined) {
    throw new ControlError("invalid-argument", "createControlServer: no listener (listen.tcp / listen.unix)");
  }
  if (tcp !== undefined && (tcp.insecure === true) === (tcp.tls !== undefined)) {
    throw new ControlError("invalid-argument", "listen.tcp needs exactly one of `tls` or `insecure: true`");
  }
  const logger = options.logger ?? defaultControlLogger();
  const shutdown = new AbortController();
  const health = new HealthStatusTable();
  health.set("", "serving");
  health.set(MIGRATION_SERVICE_NAME, "serving");
  const reflection = createReflectionService();
  const servers: Server[] = [];

  const makeServer = (resolveIdentity: IdentityResolver): Server => {
    const server = new Server({ interceptors: [authenticationInterceptor(resolveIdentity, logger)] });
    server.addService(
      MigrationServiceService,
      createMigrationService({
        backend: options.backend,
        authz: options.authz,
        logger,
        resolveIdentity,
        maxControllerStateBytes: options.maxControllerStateBytes ?? DEFAULT_MAX_CONTROLLER_STATE_BYTES,
        serverSignal: shutdown.signal,
      }),
    );
    server.addService(HealthService, healthHandlers(health));
    reflection.addToServer(server);
    servers.push(server);
    return server;
  };

  let tcpAddress: { host: string; port: number } | undefined;
  let unixPath: string | undefined;
  try {
    if (tcp !== undefined) {
      let credentials: ServerCredentials;
      let resolve: IdentityResolver;
      if (tcp.insecure === true) {
        const identity = checkIdentityName("insecureIdentity", tcp.insecureIdentity ?? "insecure-test");
        resolve = () => identity;
        credentials = ServerCredentials.createInsecure();
      } else {
        const tls = tcp.tls as TlsServerOptions;
        const provider = staticCertificateProvider(tls);
        credentials = experimental.createCertificateProviderServerCredentials(
          provider,
          provider,
          tls.rejectUnverifiedAtHandshake === true,
        );
        resolve = tlsIdentity;
      }
      const server = makeServer(resolve);
      const hostPart = tcp.host.includes(":") ? `[${tcp.host}]` : tcp.host;
      const port = await bind(server, `${hostPart}:${tcp.port}`, credentials);
      tcpAddress = { host: tcp.host, port };
      if (tcp.insecure === true) {
        logger.warn(
          {
            event: "control.insecure-listener",
            host: tcp.host,
            port,
            identity: tcp.insecureIdentity ?? "insecure-test",
          },
          "INSECURE control listener: no TLS, no authentication — for tests only",
        );
      }
      logger.info(
        {
          event: "control.listening",
          transport: tcp.insecure ? "tcp-insecure" : "tcp-tls",
          host: tcp.host,
          port,
        },
        "listening",
      );
    }
    if (unix !== undefined) {
      const identity = checkIdentityName("unix identity", unix.identity ?? "local");
      const server = makeServer(() => identity);
      await bindUnixSocket(server, unix.path);
      unixPath = unix.path;
      logger.info({ event: "control.listening", transport: "unix", path: unix.path, identity }, "listening");
    }
  } catch (e) {
    shutdown.abort();
    for (const server of servers) server.forceShutdown();
    throw e;
  }

  let closing: Promise<void> | undefined;
  const close = (graceMs = 2000): Promise<void> => {
    closing ??= (async () => {
      health.shutdown();
      shutdown.abort(new ControlError("unavailable", "server shutting down"));
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(() => server.forceShutdown(), graceMs);
              server.tryShutdown(() => {
                clearTimeout(timer);
                resolve();
              });
            }),
        ),
      );
      if (unixPath !== undefined && existsSync(unixPath) && lstatSync(unixPath).isSocket())
        rmSync(unixPath, { force: true });
      logger.info({ event: "control.closed" }, "control server closed");
    })();
    return closing;
  };

  return { tcp: tcpAddress, unixPath, health, close };
}
