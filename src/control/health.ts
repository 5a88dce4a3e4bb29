/**
 * The standard gRPC health service (grpc.health.v1.Health: Check + Watch), implemented on the
 * generated stubs of proto/grpc/health/v1/health.proto. Statuses are per service name; "" is the
 * server as a whole. Check on an unregistered name answers NOT_FOUND (as the protocol says); Watch
 * answers SERVICE_UNKNOWN and keeps watching.
 */
import { status as GrpcStatus, type handleServerStreamingCall, type handleUnaryCall } from "@grpc/grpc-js";
import {
  type HealthCheckRequest,
  HealthCheckResponse,
  type HealthServer,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health.ts";

export type HealthState = "serving" | "not-serving";

export class HealthStatusTable {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Set<(service: string, status: ServingStatus) => void>();
  readonly #closers = new Set<() => void>();

  /** Sets the status of `service` ("" = the whole server) and notifies watchers. */
  set(service: string, state: HealthState): void {
    const status = state === "serving" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    for (const watcher of this.#watchers) watcher(service, status);
  }

  /** Every known service → NOT_SERVING, then every Watch stream ends (server shutdown). */
  shutdown(): void {
    for (const service of [...this.#statuses.keys()]) this.set(service, "not-serving");
    for (const close of [...this.#closers]) close();
  }

  /** Registers what ends one Watch stream at shutdown; returns the unregister function. */
  onShutdown(close: () => void): () => void {
    this.#closers.add(close);
    return () => this.#closers.delete(close);
  }

  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Calls `watcher` on every change; returns the unsubscribe function. */
  watch(watcher: (service: string, status: ServingStatus) => void): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }
}

export function healthHandlers(table: HealthStatusTable): HealthServer {
  const check: handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
    const status = table.get(call.request.service);
    if (status === undefined) {
      callback({
        code: GrpcStatus.NOT_FOUND,
        details: `unknown service ${JSON.stringify(call.request.service)}`,
      });
      return;
    }
    callback(null, HealthCheckResponse.create({ status }));
  };
  const watch: handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse> = (call) => {
    const service = call.request.service;
    let last: ServingStatus | undefined;
    const send = (status: ServingStatus): void => {
      if (status === last) return;
      last = status;
      call.write(HealthCheckResponse.create({ status }));
    };
    send(table.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
    const unsubscribe = table.watch((changed, status) => {
      if (changed === service) send(status);
    });
    const unregister = table.onShutdown(() => {
      stop();
      call.end();
    });
    const stop = (): void => {
      unsubscribe();
      unregister();
    };
    call.on("cancelled", stop);
    call.on("close", stop);
    call.on("error", stop);
  };
  return { check, watch };
}
