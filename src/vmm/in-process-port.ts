/**
 * `FunctionPort` over a function in the same process (an `NvmeFunction`, seen here only through the
 * structural `InProcessFunction`): register and config accesses are direct calls, guest RAM is shared by
 * mapping the `GuestMemory` bytes into the function's DMA map at IOVA 0 (GPA = IOVA), and MSI-X
 * messages that pass the function's table are delivered to the driver as a microtask (coalesced per
 * vector): never inside the function's call that raised them — an interrupt arrives after the write
 * that caused it — but without waiting for another turn of the event loop, so a completion reaches
 * the driver in the same turn as the controller pass that posted it.
 *
 * Migration support: `pause()` models stopped vCPUs — from then on the guest's register accesses do
 * not reach any function (writes are held in order, reads wait) and interrupts are held — and
 * `resume()` lets them through in order, to whatever function the port then targets. `retarget`
 * moves the port (guest RAM mapping and interrupt routing) to another function, which is how an
 * in-process migration swaps the destination function in under a running driver:
 *
 *   port.pause() → source: suspend, save state → port.retarget(destination) → destination: restore
 *   state, resume → port.resume()
 */
import type { Dma } from "../memory/dma.ts";
import type { FunctionPort } from "./function-port.ts";
import type { GuestMemory } from "./guest-memory.ts";

/** MSI-X table size limit (PCI): vectors are 0..2047. */
const MSIX_MAX_VECTORS = 2048;
/** Interrupts are delivered as reactions of this promise (see `schedule`). */
const RESOLVED = Promise.resolve();

/** What the port needs of an in-process PCI function (an `NvmeFunction` has all of it). */
export interface InProcessFunction {
  readonly dma: Dma;
  barRead32(bar: number, offset: number): number;
  barRead64(bar: number, offset: number): bigint;
  barWrite32(bar: number, offset: number, value: number): void;
  barWrite64(bar: number, offset: number, value: bigint): void;
  configRead(offset: number, sizeBytes: 1 | 2 | 4): number;
  configWrite(offset: number, sizeBytes: 1 | 2 | 4, value: number): void;
  /** Adds a listener for MSI-X messages; returns its remover. */
  onInterrupt(listener: (vector: number) => void): () => void;
}

export class InProcessPort implements FunctionPort {
  private fn: InProcessFunction;
  private removeListener: () => void = () => {};
  private handler: (vector: number) => void = () => {};
  /** Vectors raised and not yet delivered, in order: entries `0 .. pendingCount-1`, each once. */
  private readonly pending: number[] = [];
  private pendingCount = 0;
  private readonly isPending = new Uint8Array(MSIX_MAX_VECTORS);
  private scheduled = false;
  private attached = false;
  private paused = false;
  /** Register/config accesses made while paused, replayed in order by `resume()`. */
  private held: Array<() => void> = [];
  /** MSI-X messages received from the function. */
  interruptsReceived = 0;

  /**
   * Maps `mem` into `fn`'s DMA map at IOVA 0 and listens for its interrupts.
   * @throws Error if the function's DMA map already has something at those addresses.
   */
  constructor(
    fn: InProcessFunction,
    private readonly mem: GuestMemory,
  ) {
    this.fn = fn;
    this.attach(fn);
  }

  /** The function the port talks to now. */
  get target(): InProcessFunction {
    return this.fn;
  }

  private attach(fn: InProcessFunction): void {
    if (!fn.dma.map(0, this.mem.bytes, true)) {
      throw new Error("guest RAM overlaps an existing DMA mapping of the function");
    }
    this.fn = fn;
    this.removeListener = fn.onInterrupt(this.onMessage);
    this.attached = true;
  }

  /** Unmaps guest RAM from the function and stops listening. Idempotent. */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.removeListener();
    this.fn.dma.unmap(0, this.mem.bytes.byteLength);
  }

  /** Moves the port to `fn` (detaching from the current function first). */
  retarget(fn: InProcessFunction): void {
    this.detach();
    this.attach(fn);
  }

  /** True between `pause()` and `resume()`. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Stops the guest's accesses and interrupt delivery (vCPUs stopped). */
  pause(): void {
    this.paused = true;
  }

  /** Replays held accesses in order to the current target, then delivers held interrupts. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const op of held) op();
    this.schedule();
  }

  private readonly onMessage = (vector: number): void => {
    this.interruptsReceived++;
    if (this.isPending[vector] === 1) return; // coalesced with the one not yet delivered
    if (!(vector >= 0 && vector < MSIX_MAX_VECTORS)) throw new RangeError(`MSI-X vector ${vector}`);
    this.isPending[vector] = 1;
    this.pending[this.pendingCount++] = vector;
    this.schedule();
  };

  private schedule(): void {
    if (!this.scheduled && !this.paused && this.pendingCount > 0) {
      this.scheduled = true;
      // A promise reaction rather than `queueMicrotask`, which wraps every callback in a new
      // AsyncResource and bound function (several times the cost, once per interrupt).
      void RESOLVED.then(this.deliver);
    }
  }

  private readonly deliver = (): void => {
    this.scheduled = false;
    // Each vector is cleared before its handler runs; one raised again by the handler is appended
    // and delivered by this same loop (the bound is re-read), as a new microtask would deliver it.
    const list = this.pending;
    let i = 0;
    for (; i < this.pendingCount && !this.paused; i++) {
      const v = list[i]!;
      this.isPending[v] = 0;
      this.handler(v);
    }
    // Paused meanwhile: keep the undelivered rest, in order, for `resume()`.
    const left = this.pendingCount - i;
    for (let j = 0; j < left; j++) list[j] = list[i + j]!;
    this.pendingCount = left;
  };

  /** Runs `op` now, or holds it until `resume()`. */
  private access<T>(op: () => T): Promise<T> {
    if (!this.paused) return Promise.resolve(op());
    return new Promise<T>((resolve) => this.held.push(() => resolve(op())));
  }

  private post(op: () => void): void {
    if (this.paused) this.held.push(op);
    else op();
  }

  configRead(offset: number, sizeBytes: 1 | 2 | 4): Promise<number> {
    return this.access(() => this.fn.configRead(offset, sizeBytes));
  }
  configWrite(offset: number, sizeBytes: 1 | 2 | 4, value: number): void {
    this.post(() => this.fn.configWrite(offset, sizeBytes, value));
  }
  read32(bar: number, offset: number): Promise<number> {
    return this.access(() => this.fn.barRead32(bar, offset));
  }
  read64(bar: number, offset: number): Promise<bigint> {
    return this.access(() => this.fn.barRead64(bar, offset));
  }
  write32(bar: number, offset: number, value: number): void {
    // The doorbell hot path: no closure unless paused.
    if (this.paused) this.held.push(() => this.fn.barWrite32(bar, offset, value));
    else this.fn.barWrite32(bar, offset, value);
  }
  write64(bar: number, offset: number, value: bigint): void {
    this.post(() => this.fn.barWrite64(bar, offset, value));
  }
  onInterrupt(handler: (vector: number) => void): void {
    this.handler = handler;
  }
  flush(): Promise<void> {
    return this.access(() => undefined);
  }
}
