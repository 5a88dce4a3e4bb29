import assert from "node:assert/strict";
import { test } from "node:test";
import { type AuthzPolicy, allowAll, allowedFunctions, isAllowed, parseAuthzPolicy } from "./authz.ts";
import { ControlError } from "./errors.ts";

const policy: AuthzPolicy = {
  host: "host-a",
  rules: [
    { identity: "orch", hosts: "*", functions: "*" },
    { identity: "tenant", hosts: ["host-a"], functions: [1, 3] },
    { identity: "tenant", hosts: ["host-a", "host-c"], functions: [4] },
    { identity: "tenant", hosts: ["host-b"], functions: [2] },
    { identity: "elsewhere", hosts: ["host-b"], functions: "*" },
    { identity: "nothing", hosts: "*", functions: [] },
  ],
};

test("allowed functions are the union of the rules for this host", () => {
  assert.equal(allowedFunctions(policy, "orch"), "*");
  assert.deepEqual(allowedFunctions(policy, "tenant"), new Set([1, 3, 4]));
  assert.equal(allowedFunctions(policy, "elsewhere"), null);
  assert.equal(allowedFunctions(policy, "unknown"), null);
  assert.deepEqual(allowedFunctions(policy, "nothing"), new Set());
  const tenant = allowedFunctions(policy, "tenant");
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((c) => isAllowed(tenant, c)),
    [false, true, false, true, true],
  );
  assert.equal(isAllowed("*", 0), true);
  assert.equal(isAllowed(null, 1), false);
  assert.equal(allowedFunctions({ ...policy, host: "host-b" }, "tenant") instanceof Set, true);
  assert.equal(allowedFunctions(allowAll("h", ["x"]), "x"), "*");
});

test("parseAuthzPolicy accepts the documented JSON shape and lists every problem otherwise", () => {
  const parsed = parseAuthzPolicy(JSON.parse(JSON.stringify(policy)));
  assert.deepEqual(parsed, policy);
  assert.throws(
    () =>
      parseAuthzPolicy({
        host: "",
        rules: [
          { identity: "a", hosts: "all", functions: [0x10000] },
          { identity: "b", hosts: [], functions: "*", x: 1 },
        ],
      }),
    (e: unknown) =>
      ControlError.is(e, "invalid-argument") &&
      /host/.test(e.message) &&
      /rules\.0\.hosts/.test(e.message) &&
      /rules\.0\.functions/.test(e.message) &&
      /rules\.1/.test(e.message),
  );
});
