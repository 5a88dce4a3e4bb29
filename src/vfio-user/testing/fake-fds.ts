/**
 * A fake file-descriptor table for tests: hands out numbers, tracks which are open, and records
 * misuse (closing or duplicating an fd that is not open). Used as `closeFd` / `dupFd` of the server,
 * client and memory transport so tests can count leaks exactly. Not API.
 */
export class FakeFdTable {
  #next = 1000;
  readonly #open = new Set<number>();
  /** Descriptions of misuse (double close, dup of a closed fd); a correct run leaves this empty. */
  readonly errors: string[] = [];

  open(): number {
    const fd = this.#next++;
    this.#open.add(fd);
    return fd;
  }

  /** SCM_RIGHTS-style duplicate: a new open fd. */
  dup(fd: number): number {
    if (!this.#open.has(fd)) this.errors.push(`dup of fd ${fd} that is not open`);
    return this.open();
  }

  close(fd: number): void {
    if (!this.#open.delete(fd)) this.errors.push(`close of fd ${fd} that is not open`);
  }

  isOpen(fd: number): boolean {
    return this.#open.has(fd);
  }

  get openCount(): number {
    return this.#open.size;
  }

  openFds(): number[] {
    return [...this.#open].sort((a, b) => a - b);
  }
}
