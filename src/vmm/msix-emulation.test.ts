/**
 * The VMM-side MSI-X table: registration on enable/unmask, masking with Pending Bits, function mask,
 * hold/release — with real eventfds signalled as a device would.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { eventfdWrite } from "../native/addon.ts";
import {
  decodeMsixCapability,
  MSIX_CONTROL_ENABLE,
  MSIX_CONTROL_FUNCTION_MASK,
  MsixEmulation,
} from "./msix-emulation.ts";

const CAP = 0x70;
const CONTROL_AT = CAP + 2;

function setup(tableSize = 8, deviceVectors = 8) {
  const registered = new Map<number, number>();
  const calls: string[] = [];
  const delivered: number[] = [];
  const layout = decodeMsixCapability(CAP, tableSize - 1, 0x0000_0004, 0x0000_1004);
  const m = new MsixEmulation(layout, {
    deviceVectors,
    register: (start, fds) => {
      calls.push(`register ${start}+${fds.length}`);
      for (const [i, fd] of fds.entries()) registered.set(start + i, fd);
    },
    unregisterAll: () => {
      calls.push("unregisterAll");
      registered.clear();
    },
    deliver: (v) => delivered.push(v),
  });
  const unmask = (v: number) => m.tableWrite32(v * 16 + 12, 0);
  const mask = (v: number) => m.tableWrite32(v * 16 + 12, 1);
  return { m, registered, calls, delivered, unmask, mask };
}

/** Lets a few event-loop turns pass (eventfd readiness is seen by the poll phase). */
const turns = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe("MsixEmulation", () => {
  it("decodes the capability and places table and PBA in their BAR", () => {
    const { m } = setup(8);
    assert.deepEqual(
      { ...m.layout },
      { capOffset: CAP, tableSize: 8, tableBar: 4, tableOffset: 0, pbaBar: 4, pbaOffset: 0x1000, control: 7 },
    );
    assert.ok(m.inTable(4, 0, 4) && m.inTable(4, 8 * 16 - 4, 4) && !m.inTable(4, 8 * 16, 4));
    assert.ok(!m.inTable(0, 0, 4));
    assert.ok(m.inPba(4, 0x1000, 4) && m.inPba(4, 0x1004, 4) && !m.inPba(4, 0x1008, 4));
    assert.equal(m.tableRead32(12), 1, "entries start masked");
    m.close();
  });

  it("registers vectors as they are unmasked while enabled, in contiguous runs on enable", async () => {
    const { m, calls, registered, unmask } = setup(8, 4);
    unmask(0);
    unmask(1);
    unmask(3);
    unmask(6); // beyond the device's 4 vectors: never registered
    assert.deepEqual(calls, [], "nothing before MSI-X Enable");
    m.configWrite(CONTROL_AT, 2, MSIX_CONTROL_ENABLE);
    assert.deepEqual(calls, ["register 0+2", "register 3+1"]);
    unmask(2);
    assert.deepEqual(calls.at(-1), "register 2+1");
    assert.equal(m.registeredCount, 4);
    m.configWrite(CONTROL_AT, 2, 0);
    assert.equal(calls.at(-1), "unregisterAll");
    assert.equal(m.registeredCount, 0);
    assert.equal(registered.size, 0);
    m.close();
  });

  it("delivers an unmasked vector, keeps a masked one pending in the PBA until unmasked", async () => {
    const { m, registered, delivered, unmask, mask } = setup(4);
    unmask(0);
    unmask(1);
    m.configWrite(CAP, 4, MSIX_CONTROL_ENABLE << 16); // a dword write at the capability header
    assert.ok(m.enabled);
    eventfdWrite(registered.get(1)!);
    await turns();
    assert.deepEqual(delivered, [1]);
    mask(1);
    eventfdWrite(registered.get(1)!);
    await turns();
    assert.deepEqual(delivered, [1], "masked: not delivered");
    assert.equal(m.pbaRead32(0x1000), 0b10, "Pending Bit 1 set");
    unmask(1);
    assert.deepEqual(delivered, [1], "not inside the guest's write");
    await turns(1);
    assert.deepEqual(delivered, [1, 1], "delivered once unmasked");
    assert.equal(m.pbaRead32(0x1000), 0);
    m.close();
  });

  it("Function Mask holds every vector pending; clearing it delivers", async () => {
    const { m, registered, delivered, unmask } = setup(4);
    unmask(0);
    m.configWrite(CONTROL_AT, 2, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK);
    assert.ok(m.functionMasked);
    eventfdWrite(registered.get(0)!);
    await turns();
    assert.deepEqual(delivered, []);
    assert.equal(m.pbaRead32(0x1000), 1);
    m.configWrite(CONTROL_AT + 1, 1, MSIX_CONTROL_ENABLE >>> 8); // byte write of the high half
    await turns(1);
    assert.deepEqual(delivered, [0]);
    m.close();
  });

  it("hold/release: signals during a hold are delivered once, after release", async () => {
    const { m, registered, delivered, unmask } = setup(4);
    unmask(0);
    unmask(2);
    m.configWrite(CONTROL_AT, 2, MSIX_CONTROL_ENABLE);
    m.hold();
    eventfdWrite(registered.get(2)!);
    eventfdWrite(registered.get(0)!);
    await turns();
    eventfdWrite(registered.get(2)!);
    await turns();
    assert.deepEqual(delivered, []);
    m.release();
    await turns(1);
    assert.deepEqual(delivered, [0, 2]);
    assert.equal(m.signals, 3);
    m.close();
  });

  it("re-registers the same eventfds (retarget)", () => {
    const { m, calls, registered, unmask } = setup(4);
    unmask(0);
    unmask(1);
    m.configWrite(CONTROL_AT, 2, MSIX_CONTROL_ENABLE);
    const before = [...registered.entries()];
    m.reregister();
    assert.deepEqual(calls, ["register 0+2", "register 0+2"]);
    assert.deepEqual([...registered.entries()], before);
    m.close();
  });
});
