/**
 * Helpers for values that may or may not be promises, so that a synchronous backend keeps the whole
 * command path synchronous (no microtask per message) while an asynchronous one still works.
 */
import type { MaybePromise } from "./device-backend.ts";

export function isPromiseLike<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

/** Applies `f` to `v` now if `v` is a plain value, or when it settles. */
export function andThen<T, R>(v: MaybePromise<T>, f: (value: T) => MaybePromise<R>): MaybePromise<R> {
  return isPromiseLike(v) ? Promise.resolve(v).then(f) : f(v);
}
