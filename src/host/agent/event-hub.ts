/**
 * Fan-out of the agent's events to WatchEvents streams. Each watcher has its own bounded queue; a
 * watcher that falls `maxQueuedEvents` behind ends with `resource-exhausted` (it would otherwise hold
 * memory without bound) and can watch again.
 */
import type { ControlEvent } from "../../control/backend.ts";
import { ControlError } from "../../control/errors.ts";

interface Watcher {
  wants(cntlid: number): boolean;
  push(e: ControlEvent): void;
  end(): void;
}

export class EventHub {
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  /** @param maxQueuedEvents Events a watcher may have unread. Default 1024, range ≥ 1. */
  constructor(private readonly maxQueuedEvents = 1024) {}

  get watcherCount(): number {
    return this.watchers.size;
  }

  emit(event: ControlEvent): void {
    for (const w of this.watchers) if (w.wants(event.cntlid)) w.push(event);
  }

  /** Events of `cntlids` from now until `signal` fires or the hub closes. */
  watch(cntlids: readonly number[] | "all", signal: AbortSignal): AsyncIterable<ControlEvent> {
    const hub = this;
    return {
      [Symbol.asyncIterator]: async function* (): AsyncGenerator<ControlEvent> {
        const queue: ControlEvent[] = [];
        let overflowed = false;
        let ended = hub.closed;
        let wake: (() => void) | undefined;
        const watcher: Watcher = {
          wants: (cntlid) => cntlids === "all" || cntlids.includes(cntlid),
          push: (e) => {
            if (queue.length >= hub.maxQueuedEvents) overflowed = true;
            else queue.push(e);
            wake?.();
          },
          end: () => {
            ended = true;
            wake?.();
          },
        };
        const onAbort = (): void => watcher.end();
        hub.watchers.add(watcher);
        signal.addEventListener("abort", onAbort);
        try {
          for (;;) {
            const next = queue.shift();
            if (next !== undefined) {
              yield next;
              continue;
            }
            if (overflowed) {
              throw new ControlError(
                "resource-exhausted",
                `event watcher fell ${hub.maxQueuedEvents} events behind; watch again`,
              );
            }
            if (ended || signal.aborted) return;
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
          }
        } finally {
          hub.watchers.delete(watcher);
          signal.removeEventListener("abort", onAbort);
        }
      },
    };
  }

  /** Ends every watcher (after the events already queued). */
  close(): void {
    this.closed = true;
    for (const w of this.watchers) w.end();
  }
}
