import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { close, eventfd, eventfdRead, eventfdWrite } from "../native/addon.ts";
import type { SetIrqsRequest } from "../vfio-user/device-backend.ts";
import { Errno, IrqIndex, SetIrqsFlag } from "../vfio-user/protocol/constants.ts";
import { VfioUserIrqs } from "./vfio-user-irqs.ts";

const { DATA_NONE, DATA_BOOL, DATA_EVENTFD, ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER } = SetIrqsFlag;

/** Real eventfds; `closed` records what the irq table closed. */
function setup(vectors = 8) {
  const closed: number[] = [];
  const irqs = new VfioUserIrqs({
    msixVectors: vectors,
    signal: (fd) => eventfdWrite(fd, 1n),
    closeFd: (fd) => {
      closed.push(fd);
      close(fd);
    },
  });
  const fired = (fd: number): boolean => eventfdRead(fd) !== -1;
  const req = (r: Partial<SetIrqsRequest> & { index: number; flags: number }): SetIrqsRequest => ({
    start: 0,
    count: 0,
    fds: [],
    ...r,
  });
  return { irqs, closed, fired, req };
}

describe("VfioUserIrqs", () => {
  it("signals the MSI-X eventfd of a vector; an unassigned vector stays pending until it gets one", () => {
    const { irqs, fired, req } = setup();
    const e0 = eventfd();
    const e3 = eventfd();
    assert.equal(
      irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, count: 1, fds: [e0] })),
      0,
    );
    irqs.raise(0);
    assert.ok(fired(e0));
    irqs.raise(3); // no eventfd for vector 3 (the client released it): pending, visible in the PBA
    assert.deepEqual([...irqs.pbaBytes(0, 1)], [0b1000]);
    assert.equal(
      irqs.set(
        req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, start: 3, count: 1, fds: [e3] }),
      ),
      0,
    );
    assert.ok(fired(e3), "assigning an eventfd to a pending vector delivers it");
    assert.deepEqual([...irqs.pbaBytes(0, 1)], [0]);
    irqs.closeAll();
  });

  it("masks and unmasks MSI-X vectors (NONE and BOOL data), delivering what was pending", () => {
    const { irqs, fired, req } = setup();
    const fds = [eventfd(), eventfd()];
    irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, count: 2, fds: [...fds] }));
    irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_NONE | ACTION_MASK, count: 2 }));
    irqs.raise(0);
    irqs.raise(1);
    assert.equal(fired(fds[0]!), false);
    assert.deepEqual([...irqs.pbaBytes(0, 1)], [0b11]);
    irqs.set(
      req({
        index: IrqIndex.MSIX,
        flags: DATA_BOOL | ACTION_UNMASK,
        count: 2,
        bools: new Uint8Array([0, 1]),
      }),
    );
    assert.equal(fired(fds[0]!), false);
    assert.ok(fired(fds[1]!));
    irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_NONE | ACTION_UNMASK, count: 1 }));
    assert.ok(fired(fds[0]!));
    assert.equal(
      irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_UNMASK, count: 1, fds: [] })),
      Errno.EINVAL,
    );
    irqs.closeAll();
  });

  it("falls back to INTx while no MSI-X eventfd exists; INTx is automasked until UNMASK", () => {
    const { irqs, fired, req } = setup();
    const intx = eventfd();
    irqs.set(req({ index: IrqIndex.INTX, flags: DATA_EVENTFD | ACTION_TRIGGER, count: 1, fds: [intx] }));
    irqs.raise(2);
    assert.ok(fired(intx));
    irqs.raise(2); // masked by the first delivery: held
    assert.equal(fired(intx), false);
    irqs.set(req({ index: IrqIndex.INTX, flags: DATA_NONE | ACTION_UNMASK, count: 1 }));
    assert.ok(fired(intx), "UNMASK delivers the interrupt that arrived while masked");
    irqs.set(req({ index: IrqIndex.INTX, flags: DATA_NONE | ACTION_UNMASK, count: 1 }));
    // Once MSI-X has an eventfd, INTx is no longer used.
    const m = eventfd();
    irqs.set(
      req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, start: 2, count: 1, fds: [m] }),
    );
    irqs.raise(2);
    assert.ok(fired(m));
    assert.equal(fired(intx), false);
    irqs.closeAll();
  });

  it("closes eventfds on replacement, de-assignment, disable and closeAll", () => {
    const { irqs, closed, req } = setup();
    const a = eventfd();
    const b = eventfd();
    const c = eventfd();
    const d = eventfd();
    irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, count: 2, fds: [a, b] }));
    irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, count: 1, fds: [c] }));
    assert.deepEqual(closed, [a], "replaced");
    irqs.set(
      req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, start: 1, count: 1, fds: [] }),
    );
    assert.deepEqual(closed, [a, b], "de-assigned");
    assert.equal(irqs.isAssigned(IrqIndex.MSIX, 1), false);
    irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_NONE | ACTION_TRIGGER }));
    assert.deepEqual(closed, [a, b, c], "disabled (count 0)");
    irqs.set(req({ index: IrqIndex.ERR, flags: DATA_EVENTFD | ACTION_TRIGGER, count: 1, fds: [d] }));
    irqs.closeAll();
    assert.deepEqual(closed, [a, b, c, d]);
  });

  it("signals on TRIGGER with DATA_NONE / DATA_BOOL (loopback), and keeps MSI-X pending bits across a client change", () => {
    const { irqs, fired, req } = setup();
    const e = eventfd();
    irqs.set(
      req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, start: 1, count: 1, fds: [e] }),
    );
    irqs.set(req({ index: IrqIndex.MSIX, flags: DATA_NONE | ACTION_TRIGGER, start: 1, count: 1 }));
    assert.ok(fired(e));
    irqs.set(
      req({
        index: IrqIndex.MSIX,
        flags: DATA_BOOL | ACTION_TRIGGER,
        start: 1,
        count: 1,
        bools: new Uint8Array([1]),
      }),
    );
    assert.ok(fired(e));
    irqs.closeAll();
    irqs.raise(1);
    irqs.closeAll();
    assert.deepEqual([...irqs.pbaBytes(0, 1)], [0b10]);
    const e2 = eventfd();
    irqs.set(
      req({ index: IrqIndex.MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, start: 1, count: 1, fds: [e2] }),
    );
    assert.ok(fired(e2));
    irqs.resetState();
    assert.deepEqual([...irqs.pbaBytes(0, 1)], [0]);
    irqs.closeAll();
  });
});
