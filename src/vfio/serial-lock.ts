/**
 * A FIFO mutex for async tasks: `run(task)` starts `task` after every earlier task settled. Tasks that
 * throw do not block the queue.
 */
export class SerialLock {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  /** True while a task runs. */
  get held(): boolean {
    return this.holders > 0;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => {
      release = r;
    });
    return prev.then(async () => {
      this.holders++;
      try {
        return await task();
      } finally {
        this.holders--;
        release();
      }
    });
  }
}
