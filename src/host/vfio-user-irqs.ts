/**
 * Interrupts of one exported function as a vfio-user client set them up: eventfds per IRQ index and
 * sub-index (DEVICE_SET_IRQS), mask and pending bits, and the routing of controller vectors.
 *
 * Routing of controller vector v (the client emulates the MSI-X table, so vectors bypass ours):
 *   MSI-X eventfd for v assigned   → signal it (masked: set pending instead; unmask delivers)
 *   other MSI-X eventfds assigned  → pending bit v (delivered when v gets an eventfd: the client
 *                                    released a vector the guest masked, and reads the PBA from us)
 *   no MSI-X eventfd, INTx assigned → INTx (automasked: the client's UNMASK re-arms it; an interrupt
 *                                    meanwhile is delivered at that UNMASK)
 *   nothing assigned               → pending bit v
 *
 * SET_IRQS actions (the server has checked index, range and fd count):
 *   DATA_NONE, count 0         → disable the index: close its eventfds, clear its mask/pending bits
 *   TRIGGER + DATA_EVENTFD     → assign fds to start… (a pending unmasked vector fires); no fds = de-assign
 *   TRIGGER + DATA_NONE / BOOL → signal the sub-indexes (loopback), as the device would
 *   MASK / UNMASK + NONE / BOOL → mask / unmask (unmask delivers what is pending)
 *   MASK / UNMASK + EVENTFD    → EINVAL (no resampling eventfds)
 *
 * Fds given to `set` belong to this object when it returns 0; they are closed when replaced, on
 * de-assignment, on disable and on `closeAll`.
 */
import type { Errno, IrqInfo, SetIrqsRequest } from "../vfio-user/device-backend.ts";
import {
  Errno as E,
  IrqIndex,
  IrqInfoFlag,
  SET_IRQS_DATA_MASK,
  SetIrqsFlag,
} from "../vfio-user/protocol/constants.ts";

export interface VfioUserIrqsOptions {
  /** MSI-X vectors of the function (range 1..2048). */
  msixVectors: number;
  /** Signals an eventfd (adds 1); returns false when it failed. */
  signal: (fd: number) => boolean;
  /** Closes an fd this object owns. */
  closeFd: (fd: number) => void;
}

/** One IRQ index: per sub-index eventfd, mask and pending bit. */
class IrqLine {
  readonly fds: (number | undefined)[];
  readonly masked: boolean[];
  readonly pending: boolean[];
  assigned = 0;

  constructor(
    readonly count: number,
    /** INTx: masked by the device each time it fires, until the client unmasks. */
    readonly automask: boolean,
    private readonly o: VfioUserIrqsOptions,
  ) {
    this.fds = new Array<number | undefined>(count).fill(undefined);
    this.masked = new Array<boolean>(count).fill(false);
    this.pending = new Array<boolean>(count).fill(false);
  }

  /** Signals sub-index i, or marks it pending when masked or unassigned. */
  trigger(i: number): void {
    const fd = this.fds[i];
    if (fd === undefined || this.masked[i]) {
      this.pending[i] = true;
      return;
    }
    this.pending[i] = false;
    if (this.automask) this.masked[i] = true;
    this.o.signal(fd);
  }

  assign(i: number, fd: number | undefined): void {
    const old = this.fds[i];
    if (old !== undefined) {
      this.assigned--;
      this.o.closeFd(old);
    }
    this.fds[i] = fd;
    if (fd === undefined) return;
    this.assigned++;
    if (this.pending[i] && !this.masked[i]) this.trigger(i);
  }

  mask(i: number): void {
    this.masked[i] = true;
  }

  unmask(i: number): void {
    this.masked[i] = false;
    if (this.pending[i]) this.trigger(i);
  }

  /** Closes every eventfd; `clearState` also drops mask and pending bits. */
  release(clearState: boolean): void {
    for (let i = 0; i < this.count; i++) this.assign(i, undefined);
    if (clearState) {
      this.masked.fill(false);
      this.pending.fill(false);
    }
  }
}

/** IRQ info of the five PCI indexes, as the export advertises them. */
export function irqInfoFor(index: number, msixVectors: number): IrqInfo | undefined {
  switch (index) {
    case IrqIndex.INTX:
      return { flags: IrqInfoFlag.EVENTFD | IrqInfoFlag.MASKABLE | IrqInfoFlag.AUTOMASKED, count: 1 };
    case IrqIndex.MSI:
      return { flags: IrqInfoFlag.EVENTFD, count: 0 }; // the function has no MSI capability
    case IrqIndex.MSIX:
      return { flags: IrqInfoFlag.EVENTFD | IrqInfoFlag.MASKABLE, count: msixVectors };
    case IrqIndex.ERR:
    case IrqIndex.REQ:
      return { flags: IrqInfoFlag.EVENTFD, count: 1 };
    default:
      return undefined;
  }
}

export class VfioUserIrqs {
  readonly #lines: IrqLine[];

  constructor(o: VfioUserIrqsOptions) {
    const line = (index: number) => new IrqLine(irqInfoFor(index, o.msixVectors)!.count, index === 0, o);
    this.#lines = [IrqIndex.INTX, IrqIndex.MSI, IrqIndex.MSIX, IrqIndex.ERR, IrqIndex.REQ].map(line);
  }

  /** DEVICE_SET_IRQS (see the file head). */
  set(r: SetIrqsRequest): Errno {
    const line = this.#lines[r.index];
    if (line === undefined) return E.EINVAL;
    const data = r.flags & SET_IRQS_DATA_MASK;
    if (r.count === 0) {
      if (data === SetIrqsFlag.DATA_NONE && (r.flags & SetIrqsFlag.ACTION_TRIGGER) !== 0) line.release(true);
      return 0;
    }
    if (r.start + r.count > line.count) return E.EINVAL;
    const selected = (k: number): boolean => data !== SetIrqsFlag.DATA_BOOL || (r.bools?.[k] ?? 0) !== 0;
    if ((r.flags & SetIrqsFlag.ACTION_TRIGGER) !== 0) {
      if (data === SetIrqsFlag.DATA_EVENTFD) {
        for (let k = 0; k < r.count; k++) line.assign(r.start + k, r.fds[k]);
        return 0;
      }
      for (let k = 0; k < r.count; k++) if (selected(k)) line.trigger(r.start + k);
      return 0;
    }
    if (data === SetIrqsFlag.DATA_EVENTFD) return E.EINVAL;
    const unmask = (r.flags & SetIrqsFlag.ACTION_UNMASK) !== 0;
    for (let k = 0; k < r.count; k++) {
      if (!selected(k)) continue;
      if (unmask) line.unmask(r.start + k);
      else line.mask(r.start + k);
    }
    return 0;
  }

  /** Raises controller vector `vector` (routing rule in the file head). */
  raise(vector: number): void {
    const msix = this.#lines[IrqIndex.MSIX]!;
    if (vector < 0 || vector >= msix.count) return;
    const intx = this.#lines[IrqIndex.INTX]!;
    if (msix.assigned === 0 && intx.fds[0] !== undefined) {
      intx.trigger(0);
      return;
    }
    msix.trigger(vector);
  }

  /** MSI-X pending bits as PBA bytes `[offset, offset + length)` (bit v of the PBA = vector v). */
  pbaBytes(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const pending = this.#lines[IrqIndex.MSIX]!.pending;
    for (let i = 0; i < length; i++) {
      let b = 0;
      for (let bit = 0; bit < 8; bit++) if (pending[(offset + i) * 8 + bit] === true) b |= 1 << bit;
      out[i] = b;
    }
    return out;
  }

  /** True when sub-index `sub` of IRQ `index` has an eventfd. */
  isAssigned(index: number, sub: number): boolean {
    return this.#lines[index]?.fds[sub] !== undefined;
  }

  /** Device reset: mask and pending bits go; eventfds stay. */
  resetState(): void {
    for (const l of this.#lines) {
      l.masked.fill(false);
      l.pending.fill(false);
    }
  }

  /** Client gone: every eventfd closed, masks cleared; MSI-X pending bits kept for the next client. */
  closeAll(): void {
    for (const l of this.#lines) {
      const keepPending = l === this.#lines[IrqIndex.MSIX];
      const pending = keepPending ? [...l.pending] : undefined;
      l.release(true);
      if (pending !== undefined) for (let i = 0; i < pending.length; i++) l.pending[i] = pending[i]!;
    }
  }
}
