import assert from "node:assert/strict";
import { test } from "node:test";
import { status as GrpcStatus } from "@grpc/grpc-js";
import {
  ControlError,
  type ControlErrorCode,
  fromGrpcError,
  fromGrpcStatus,
  grpcStatusOfCode,
  toGrpcStatus,
} from "./errors.ts";

test("the code table is one-to-one and matches the documented statuses", () => {
  const expected: Record<ControlErrorCode, number> = {
    "not-found": 5,
    "invalid-argument": 3,
    "failed-precondition": 9,
    unauthenticated: 16,
    "permission-denied": 7,
    unavailable: 14,
    internal: 13,
    aborted: 10,
    "deadline-exceeded": 4,
    cancelled: 1,
    unimplemented: 12,
    "resource-exhausted": 8,
  };
  assert.deepEqual({ ...grpcStatusOfCode }, expected);
  assert.equal(new Set(Object.values(grpcStatusOfCode)).size, Object.keys(grpcStatusOfCode).length);
});

test("server → status → client gives back the same code and message", () => {
  for (const code of Object.keys(grpcStatusOfCode) as ControlErrorCode[]) {
    const status = toGrpcStatus(new ControlError(code, `msg ${code}`));
    const back = fromGrpcStatus(status.code, status.details);
    assert.equal(back.code, code);
    assert.equal(back.message, `msg ${code}`);
    assert.equal(back.grpcStatus, status.code);
  }
});

test("anything that is not a ControlError becomes INTERNAL with a generic message", () => {
  assert.deepEqual(toGrpcStatus(new TypeError("secret detail")), {
    code: GrpcStatus.INTERNAL,
    details: "internal error",
  });
  const e = ControlError.from(new RangeError("x"));
  assert.equal(e.code, "internal");
  assert.ok(e.cause instanceof RangeError);
  const same = new ControlError("aborted", "a");
  assert.equal(ControlError.from(same), same);
});

test("statuses outside the table and non-status errors map to internal on the client", () => {
  for (const status of [
    GrpcStatus.UNKNOWN,
    GrpcStatus.ALREADY_EXISTS,
    GrpcStatus.OUT_OF_RANGE,
    GrpcStatus.DATA_LOSS,
  ]) {
    const e = fromGrpcStatus(status, "");
    assert.equal(e.code, "internal");
    assert.equal(e.grpcStatus, status);
    assert.match(e.message, /gRPC status/);
  }
  assert.equal(fromGrpcError({ code: 7, details: "no" }).code, "permission-denied");
  assert.equal(fromGrpcError(new Error("boom")).code, "internal");
});
