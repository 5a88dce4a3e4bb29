/**
 * The VMM's view of one attached PCI function (an NVMe PF or VF), whatever carries it: a direct
 * in-process call into the emulator, or a vfio-user socket.
 *
 * Reads are asynchronous (a register read over a socket is a round trip). Writes are posted and
 * ordered, as MMIO writes are on PCI: `write32`/`write64` return at once, and a later read of the same
 * function observes them. Doorbell writes are the hot path and never wait.
 */
export interface FunctionPort {
  /** Config space read of 1, 2 or 4 bytes at `offset` (0..4095). */
  configRead(offset: number, sizeBytes: 1 | 2 | 4): Promise<number>;
  /** Config space write (posted). */
  configWrite(offset: number, sizeBytes: 1 | 2 | 4, value: number): void;
  /** 32-bit read of BAR `bar` at byte `offset`. */
  read32(bar: number, offset: number): Promise<number>;
  /** 64-bit read (CAP, ASQ, ACQ). */
  read64(bar: number, offset: number): Promise<bigint>;
  /** 32-bit posted write (registers, doorbells). */
  write32(bar: number, offset: number, value: number): void;
  /** 64-bit posted write (ASQ, ACQ). */
  write64(bar: number, offset: number, value: bigint): void;
  /**
   * Registers the handler called once per MSI-X message the function sends (vector number).
   * Replaces any previous handler.
   */
  onInterrupt(handler: (vector: number) => void): void;
  /** Resolves when every posted write issued so far has reached the function. */
  flush(): Promise<void>;
}
