/**
 * Outstanding requests of one side of a connection: allocates message ids from the sender's own id
 * space (u16, skipping ids still in flight), matches replies by id + command, and settles each
 * request exactly once — with the reply, an error reply (`remote-error`), a timeout, or a disconnect.
 * Used by the client for its commands and by the server for DMA_READ/DMA_WRITE. Internal.
 */
import { VfioUserError } from "./errors.ts";
import { commandName, Errno } from "./protocol/constants.ts";
import { hasError, type MessageHeader } from "./protocol/header.ts";

export interface TrackedReply {
  header: MessageHeader;
  payload: Uint8Array;
  /** fds that came with the reply; the requester owns them. */
  fds: number[];
}

export interface RequestHooks {
  /** Runs synchronously when the success reply is matched, before the next message is handled. */
  onSuccess?: () => void;
  /** Runs synchronously when the request fails in any way. */
  onError?: () => void;
}

interface Pending extends RequestHooks {
  command: number;
  resolve: (r: TrackedReply) => void;
  reject: (e: VfioUserError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class RequestTracker {
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;

  /**
   * @param timeoutMs time allowed for each reply; 0 = no limit.
   * @param onTimeout called (before the rejection) when a request times out.
   */
  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout?: (id: number, command: number) => void,
  ) {}

  get size(): number {
    return this.#pending.size;
  }

  /**
   * Registers a request and returns its id; `send` is called with it at once. Rejects with
   * `invalid-request` (EAGAIN) when all 65536 ids are in flight.
   */
  start(command: number, send: (id: number) => void, hooks: RequestHooks = {}): Promise<TrackedReply> {
    if (this.#pending.size >= 0x10000) {
      hooks.onError?.();
      return Promise.reject(
        new VfioUserError("invalid-request", "65536 requests in flight", { errno: Errno.EAGAIN }),
      );
    }
    let id = this.#nextId;
    while (this.#pending.has(id)) id = (id + 1) & 0xffff;
    this.#nextId = (id + 1) & 0xffff;
    return new Promise<TrackedReply>((resolve, reject) => {
      const p: Pending = { ...hooks, command, resolve, reject, timer: undefined };
      if (this.timeoutMs > 0) {
        p.timer = setTimeout(() => {
          if (this.#pending.get(id) !== p) return;
          this.#pending.delete(id);
          this.onTimeout?.(id, command);
          p.onError?.();
          reject(
            new VfioUserError("timeout", `${commandName(command)} got no reply`, { errno: Errno.ETIMEDOUT }),
          );
        }, this.timeoutMs);
      }
      this.#pending.set(id, p);
      send(id);
    });
  }

  /** Settles the request `reply` answers. Returns false (changing nothing) when none matches. */
  settle(reply: TrackedReply): boolean {
    const p = this.#take(reply.header);
    if (p === undefined) return false;
    const h = reply.header;
    if (hasError(h.flags)) {
      p.onError?.();
      p.reject(
        new VfioUserError("remote-error", `${commandName(h.command)} failed`, {
          errno: h.errno || Errno.EIO,
        }),
      );
    } else {
      p.onSuccess?.();
      p.resolve(reply);
    }
    return true;
  }

  /** Fails the request with this id and command, if any. Returns false when none matches. */
  fail(h: { id: number; command: number }, e: VfioUserError): boolean {
    const p = this.#take(h);
    if (p === undefined) return false;
    p.onError?.();
    p.reject(e);
    return true;
  }

  /** Fails every outstanding request (connection gone). `e` is built only if one is outstanding. */
  failAll(e: () => VfioUserError): void {
    if (this.#pending.size === 0) return;
    const err = e();
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      if (p.timer !== undefined) clearTimeout(p.timer);
      p.onError?.();
      p.reject(err);
    }
  }

  #take(h: { id: number; command: number }): Pending | undefined {
    const p = this.#pending.get(h.id);
    if (p === undefined || p.command !== h.command) return undefined;
    this.#pending.delete(h.id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    return p;
  }
}
