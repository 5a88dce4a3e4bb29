/** grpc.health.v1 Check and Watch through a real UNIX-socket server (generated stub as the client). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { credentials } from "@grpc/grpc-js";
import {
  type HealthCheckResponse,
  HealthClient,
  HealthCheckResponse_ServingStatus as S,
} from "../gen/grpc/health/v1/health.ts";
import { allowAll } from "./authz.ts";
import { fromGrpcError } from "./errors.ts";
import { FakeControlBackend } from "./fake-backend.ts";
import { createControlServer, MIGRATION_SERVICE_NAME } from "./server.ts";
import { recordingLogger, tempDir } from "./test-support.ts";

test("Check answers per service (NOT_FOUND if unknown); Watch follows changes and ends at shutdown", async () => {
  const dir = tempDir("health");
  const server = await createControlServer({
    backend: new FakeControlBackend(),
    authz: allowAll("h", ["local"]),
    logger: recordingLogger(),
    listen: { unix: { path: `${dir.path}/h.sock` } },
  });
  const health = new HealthClient(`unix:${server.unixPath}`, credentials.createInsecure());
  const check = (service: string): Promise<HealthCheckResponse> =>
    new Promise((resolve, reject) =>
      health.check({ service }, (error, response) =>
        error ? reject(fromGrpcError(error)) : resolve(response),
      ),
    );
  try {
    assert.equal((await check("")).status, S.SERVING);
    assert.equal((await check(MIGRATION_SERVICE_NAME)).status, S.SERVING);
    await assert.rejects(check("no.such.Service"), (e: unknown) => fromGrpcError(e).code === "not-found");

    const seen: S[] = [];
    const watch = health.watch({ service: MIGRATION_SERVICE_NAME });
    const ended = new Promise<void>((resolve) => watch.on("end", () => resolve()));
    watch.on("data", (r: HealthCheckResponse) => {
      seen.push(r.status);
      if (seen.length === 1) server.health.set(MIGRATION_SERVICE_NAME, "not-serving");
      if (seen.length === 2) server.health.set(MIGRATION_SERVICE_NAME, "serving");
      if (seen.length === 3) void server.close();
    });
    await ended;
    assert.deepEqual(seen, [S.SERVING, S.NOT_SERVING, S.SERVING, S.NOT_SERVING]);
  } finally {
    health.close();
    await server.close();
    dir.cleanup();
  }
});
