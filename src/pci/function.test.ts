import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { walkCapabilities } from "./capabilities.ts";
import { PciError } from "./errors.ts";
import type { PciEvent } from "./events.ts";
import { type CommandState, PciFunction, type PciFunctionDescriptor, type SriovState } from "./function.ts";

/** An NVMe PF: BAR0 16 KiB with MSI-X table at 0x2000 and PBA at 0x3000, 8 VFs. */
const PF: PciFunctionDescriptor = {
  vendorId: 0x1234,
  deviceId: 0x5845,
  subsystemVendorId: 0x1af4,
  subsystemId: 0x1100,
  classCode: 0x010802,
  revision: 0x02,
  bars: [
    { index: 0, sizeBytes: 16 * 1024, prefetchable: false },
    { index: 4, sizeBytes: 64 * 1024, prefetchable: true },
  ],
  msix: { vectors: 33, tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 },
  sriov: { totalVfs: 8, vfDeviceId: 0x5846, firstVfOffset: 1, vfStride: 1, vfBar0SizeBytes: 16 * 1024 },
  isVirtualFunction: false,
};

const VF: PciFunctionDescriptor = {
  ...PF,
  deviceId: 0x5846,
  bars: [{ index: 0, sizeBytes: 16 * 1024, prefetchable: false }],
  msix: { vectors: 9, tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 },
  sriov: undefined,
  isVirtualFunction: true,
};

function pf(descriptor: PciFunctionDescriptor = PF) {
  const log = {
    flr: 0,
    sriov: [] as SriovState[],
    command: [] as CommandState[],
    messages: [] as [number, bigint, number][],
    events: [] as PciEvent[],
  };
  const fn = new PciFunction(descriptor, {
    onFunctionLevelReset: () => log.flr++,
    onSriovChange: (s) => log.sriov.push(s),
    onCommandChange: (c) => log.command.push(c),
    onMsixMessage: (v, a, d) => log.messages.push([v, a, d]),
    onEvent: (e) => log.events.push(e),
  });
  return { fn, log };
}

function cap(fn: PciFunction, name: string): number {
  const at = fn.capabilityOffsets.get(name);
  assert.ok(at !== undefined, `capability ${name}`);
  return at;
}

describe("PciFunction (NVMe PF descriptor)", () => {
  test("header reset values", () => {
    const { fn } = pf();
    assert.equal(fn.configRead(0x00, 4), 0x58451234);
    assert.equal(fn.configRead(0x04, 2), 0);
    assert.equal(fn.configRead(0x06, 2), 0x0010);
    assert.equal(fn.configRead(0x08, 4), 0x01080202, "class 01 08 02, revision 2");
    assert.equal(fn.configRead(0x0c, 4), 0, "cache line, latency, header type 0, BIST");
    assert.equal(fn.configRead(0x10, 4), 0x4);
    assert.equal(fn.configRead(0x14, 4), 0);
    assert.equal(fn.configRead(0x18, 4), 0);
    assert.equal(fn.configRead(0x1c, 4), 0);
    assert.equal(fn.configRead(0x20, 4), 0xc);
    assert.equal(fn.configRead(0x24, 4), 0);
    assert.equal(fn.configRead(0x2c, 4), 0x11001af4);
    assert.equal(fn.configRead(0x30, 4), 0);
    assert.equal(fn.configRead(0x34, 1), 0x40);
    assert.equal(fn.configRead(0x3c, 4), 0x00000100, "line 0, pin INTA");
  });

  test("capability list walk: every capability reachable, ids correct, list terminates", () => {
    const { fn } = pf();
    const walk = walkCapabilities(fn.config);
    assert.equal(walk.problem, undefined);
    assert.deepEqual(walk.standard, [
      { id: 0x01, offset: 0x40 },
      { id: 0x11, offset: 0x48 },
      { id: 0x10, offset: 0x54 },
    ]);
    assert.deepEqual(walk.extended, [
      { id: 0x10, version: 1, offset: 0x100 },
      { id: 0x0e, version: 1, offset: 0x140 },
    ]);
    assert.deepEqual([...fn.capabilityOffsets.keys()], ["pm", "msix", "pcie", "sriov", "ari"]);
  });

  test("MSI-X capability: table size N-1, BIR/offsets; Enable and Function Mask are RW", () => {
    const { fn } = pf();
    const m = cap(fn, "msix");
    assert.equal(fn.configRead(m + 2, 2), 32);
    assert.equal(fn.configRead(m + 4, 4), 0x2000);
    assert.equal(fn.configRead(m + 8, 4), 0x3000);
    fn.configWrite(m + 2, 2, 0xffff);
    assert.equal(fn.configRead(m + 2, 2), 0xc020);
    assert.deepEqual(fn.msixControl, { enable: true, functionMask: true });
    assert.deepEqual(fn.msix.control, { enable: true, functionMask: true }, "table mirrors the capability");
  });

  test("BAR sizing through config space, both halves, and barAddress", () => {
    const { fn } = pf();
    fn.configWrite(0x10, 4, 0xffffffff);
    fn.configWrite(0x14, 4, 0xffffffff);
    assert.equal(fn.configRead(0x10, 4), 0xffffc004);
    assert.equal(fn.configRead(0x14, 4), 0xffffffff);
    fn.configWrite(0x20, 4, 0xffffffff);
    assert.equal(fn.configRead(0x20, 4), 0xffff000c);
    fn.configWrite(0x10, 4, 0xfebf0000);
    fn.configWrite(0x14, 4, 0);
    assert.equal(fn.barAddress(0), 0xfebf0000n);
    assert.equal(fn.barAddress(2), undefined);
    fn.configWrite(0x30, 4, 0xffffffff);
    assert.equal(fn.configRead(0x30, 4), 0, "no expansion ROM");
  });

  test("Command changes are reported; busMaster / memorySpace getters follow", () => {
    const { fn, log } = pf();
    fn.configWrite(0x04, 2, 0x0006);
    assert.equal(fn.busMasterEnabled, true);
    assert.equal(fn.memorySpaceEnabled, true);
    assert.deepEqual(log.command, [
      { ioSpace: false, memorySpace: true, busMaster: true, intxDisable: false },
    ]);
    fn.configWrite(0x04, 2, 0x0006);
    assert.equal(log.command.length, 1);
  });

  test("Initiate FLR: hook called, bit reads 0, function state reset, sticky bits kept", () => {
    const { fn, log } = pf();
    const e = cap(fn, "pcie");
    const m = cap(fn, "msix");
    fn.configWrite(0x04, 2, 0x0006);
    fn.configWrite(0x10, 4, 0xfebf0000);
    fn.configWrite(m + 2, 2, 0x8000);
    fn.msixWrite(0, 0x2000 + 12, 4, 0); // unmask vector 0
    fn.configWrite(e + 8, 2, 0x2830); // MPS 256
    fn.configWrite(e + 8, 2, 0xa830); // + Initiate FLR
    assert.equal(log.flr, 1);
    assert.equal(fn.configRead(e + 8, 2), 0x2830, "FLR bit reads 0, MPS kept, rest reset");
    assert.equal(fn.configRead(0x04, 2), 0);
    assert.equal(fn.configRead(0x10, 4), 0x4);
    assert.equal(fn.configRead(m + 2, 2), 32);
    assert.deepEqual(fn.msix.control, { enable: false, functionMask: false });
    assert.equal(fn.msix.masked(0), true);
    assert.deepEqual(log.command.at(-1), {
      ioSpace: false,
      memorySpace: false,
      busMaster: false,
      intxDisable: false,
    });
    assert.ok(log.events.some((ev) => ev.name === "pci.flr"));
  });

  test("FLR of the PF with VFs enabled reports VF Enable cleared", () => {
    const { fn, log } = pf();
    const s = cap(fn, "sriov");
    fn.configWrite(s + 0x10, 2, 4);
    fn.configWrite(s + 0x08, 2, 0x0009);
    assert.deepEqual(fn.sriovState(), {
      vfEnable: true,
      numVfs: 4,
      vfMemorySpaceEnable: true,
      ariCapableHierarchy: false,
    });
    fn.functionLevelReset();
    assert.equal(log.flr, 1);
    assert.deepEqual(log.sriov.at(-1), {
      vfEnable: false,
      numVfs: 0,
      vfMemorySpaceEnable: false,
      ariCapableHierarchy: false,
    });
  });

  test("SR-IOV through the function: NumVFs bounded, VF Enable hook, VF BAR sizing, ARI present", () => {
    const { fn, log } = pf();
    const s = cap(fn, "sriov");
    fn.configWrite(s + 0x10, 2, 100);
    assert.equal(fn.configRead(s + 0x10, 2), 0);
    fn.configWrite(s + 0x10, 2, 8);
    fn.configWrite(s + 0x08, 2, 0x0001);
    assert.deepEqual(log.sriov.at(-1), {
      vfEnable: true,
      numVfs: 8,
      vfMemorySpaceEnable: false,
      ariCapableHierarchy: false,
    });
    fn.configWrite(s + 0x24, 4, 0xffffffff);
    assert.equal(fn.configRead(s + 0x24, 4), 0xffffc004);
    fn.configWrite(s + 0x24, 4, 0x80000000);
    assert.equal(fn.vfBarAddress(0), 0x80000000n);
    assert.equal(fn.vfBarSizeBytes(0), 16 * 1024);
    assert.equal(fn.configRead(cap(fn, "ari"), 2), 0x000e);
  });

  test("MSI-X through BAR routing: masked → pending → unmask delivers; PBA read-only", () => {
    const { fn, log } = pf();
    fn.configWrite(0x04, 2, 0x0006);
    fn.configWrite(cap(fn, "msix") + 2, 2, 0x8000);
    assert.equal(fn.msixWrite64(0, 0x2000 + 5 * 16, 0x0000_0000_fee0_1000n), true);
    assert.equal(fn.msixWrite(0, 0x2000 + 5 * 16 + 8, 4, 0x4025), true);
    assert.equal(fn.signal(5), "pending");
    assert.equal(fn.msixRead64(0, 0x3000), 1n << 5n);
    assert.equal(fn.msixWrite64(0, 0x3000, 0n), true, "PBA write accepted and ignored");
    assert.equal(fn.msixRead(0, 0x3000, 4), 1 << 5);
    fn.msixWrite(0, 0x2000 + 5 * 16 + 12, 4, 0);
    assert.deepEqual(log.messages, [[5, 0xfee01000n, 0x4025]]);
    assert.equal(fn.msixRead(0, 0x3000, 4), 0);
    assert.equal(fn.signal(5), "delivered");
    assert.equal(fn.signal(33), "bad-vector");
  });

  test("BAR accesses outside the MSI-X regions are left to the owner", () => {
    const { fn, log } = pf();
    assert.equal(fn.msixRead(0, 0x14, 4), undefined, "NVMe register");
    assert.equal(fn.msixRead(0, 0x1000, 4), undefined, "doorbell");
    assert.equal(fn.msixWrite(0, 0x1ffc, 4, 1), false);
    assert.equal(fn.msixRead(4, 0x2000, 4), undefined, "other BAR");
    assert.equal(fn.msixRead(0, 0x2000 + 33 * 16, 4), undefined, "just past the table");
    assert.equal(fn.msixRead(0, 0x1ffe, 4), 0, "straddling the edge: handled, reads 0");
    assert.equal(fn.msixWrite(0, 0x3006, 4, 1), true, "straddling the PBA end: dropped");
    assert.deepEqual(
      log.events.map((e) => e.name),
      ["pci.msix.bad-access", "pci.msix.bad-access"],
    );
    assert.deepEqual(fn.msixRegions(), [
      { kind: "table", bar: 0, offset: 0x2000, sizeBytes: 33 * 16 },
      { kind: "pba", bar: 0, offset: 0x3000, sizeBytes: 8 },
    ]);
  });

  test("with Bus Master Enable clear an MSI-X message is dropped and reported", () => {
    const { fn, log } = pf();
    fn.configWrite(cap(fn, "msix") + 2, 2, 0x8000);
    fn.msixWrite(0, 0x2000 + 12, 4, 0);
    assert.equal(fn.signal(0), "dropped-bus-master-off");
    assert.equal(fn.msix.pending(0), false);
    assert.deepEqual(log.events.at(-1), { name: "pci.msix.dropped-bus-master-off", vector: 0 });
  });

  test("power state follows PMCSR", () => {
    const { fn } = pf();
    fn.configWrite(cap(fn, "pm") + 4, 2, 3);
    assert.equal(fn.powerState, 3);
  });

  test("an inconsistent descriptor is refused with PciError('invalid-descriptor')", () => {
    const bad: PciFunctionDescriptor[] = [
      { ...PF, vendorId: 0x10000 },
      { ...PF, classCode: 0x1000000 },
      { ...PF, bars: [{ index: 1, sizeBytes: 4096, prefetchable: false }] },
      { ...PF, msix: { ...PF.msix, tableBar: 2 } },
      { ...PF, msix: { ...PF.msix, tableOffset: 0x3ff8 } },
      { ...PF, msix: { ...PF.msix, pbaOffset: 0x2100 } },
      { ...PF, msix: { ...PF.msix, vectors: 0 } },
      { ...PF, msix: { ...PF.msix, tableOffset: 0x2004 } },
      { ...VF, sriov: PF.sriov },
      { ...PF, sriov: { ...PF.sriov!, totalVfs: 0 } },
      { ...PF, sriov: { ...PF.sriov!, vfBar0SizeBytes: 1000 } },
      { ...PF, sriov: { ...PF.sriov!, supportedPageSizes: 0x10 } },
      { ...PF, interruptPin: 5 },
      { ...PF, link: { speed: 6, width: 4 } },
    ];
    for (const d of bad) {
      assert.throws(
        () => new PciFunction(d),
        (e: unknown) => e instanceof PciError && e.code === "invalid-descriptor",
        JSON.stringify(d).slice(0, 80),
      );
    }
  });
});

describe("PciFunction as a VF", () => {
  test("presented as physical (default): real ids, BARs, no SR-IOV/ARI, no INTx pin", () => {
    const { fn } = pf(VF);
    assert.equal(fn.configRead(0, 4), 0x58461234);
    assert.equal(fn.configRead(0x10, 4), 0x4);
    assert.equal(fn.configRead(0x3d, 1), 0);
    assert.equal(fn.configRead(0x100, 4), 0, "no extended capabilities");
    assert.equal(fn.sriovState(), undefined);
    const walk = walkCapabilities(fn.config);
    assert.deepEqual(
      walk.standard.map((c) => c.id),
      [0x01, 0x11, 0x10],
    );
    fn.configWrite(0x04, 2, 0x0006);
    assert.equal(fn.memorySpaceEnabled, true);
  });

  test("seen as an SR-IOV VF: ids read 0xFFFF, BARs read 0, only Bus Master writable", () => {
    const { fn } = pf({ ...VF, presentAsPhysical: false });
    assert.equal(fn.configRead(0, 4), 0xffffffff);
    assert.equal(fn.configRead(0x08, 4), 0x01080202, "class code still reported");
    fn.configWrite(0x10, 4, 0xffffffff);
    assert.equal(fn.configRead(0x10, 4), 0);
    assert.equal(fn.barAddress(0), undefined);
    fn.configWrite(0x04, 2, 0xffff);
    assert.equal(fn.configRead(0x04, 2), 0x0004);
    fn.configWrite(0x3c, 1, 0xff);
    assert.equal(fn.configRead(0x3c, 1), 0);
    assert.ok((fn.configRead(0x54 + 4, 4)! & 0x10000000) !== 0, "FLR capable");
    assert.equal(fn.msixRead(0, 0x2000 + 12, 4), 1, "MSI-X table still routed through the VF BAR");
  });
});

describe("PciFunction snapshot / restore", () => {
  function programmed() {
    const { fn, log } = pf();
    const s = cap(fn, "sriov");
    fn.configWrite(0x04, 2, 0x0546);
    fn.configWrite(0x10, 4, 0xfebf0000);
    fn.configWrite(0x14, 4, 0x1);
    fn.configWrite(0x3c, 1, 11);
    fn.configWrite(cap(fn, "pcie") + 8, 2, 0x2830);
    fn.configWrite(s + 0x20, 4, 0x10);
    fn.configWrite(s + 0x24, 4, 0xc0000000);
    fn.configWrite(s + 0x10, 2, 3);
    fn.configWrite(s + 0x08, 2, 0x0019);
    fn.configWrite(cap(fn, "msix") + 2, 2, 0xc000);
    fn.msixWrite64(0, 0x2000 + 16, 0xfee0_2000n);
    fn.msixWrite(0, 0x2000 + 16 + 8, 4, 0x31);
    fn.msixWrite(0, 0x2000 + 16 + 12, 4, 0);
    fn.signal(1); // function masked → pending
    fn.config.bytes[0x07] = fn.config.bytes[0x07]! | 0x20; // device latched Received Master Abort
    return { fn, log };
  }

  test("round trip through JSON into a fresh function reproduces every config byte and the MSI-X state", () => {
    const { fn: src } = programmed();
    const snap = JSON.parse(JSON.stringify(src.snapshot()));
    assert.equal(snap.config["header.command"], 0x0546);
    assert.equal(snap.config["sriov.numVfs"], 3);
    assert.equal(snap.config["header.status"], 0x2010);
    const { fn: dst, log } = pf();
    const result = dst.restore(snap);
    assert.deepEqual(result, { ok: true, ignoredFields: [] });
    assert.deepEqual(dst.config.bytes, src.config.bytes);
    assert.deepEqual(dst.msix.snapshot(), src.msix.snapshot());
    assert.deepEqual(dst.msixControl, { enable: true, functionMask: true });
    assert.equal(dst.vfBarSizeBytes(0), 64 * 1024, "VF BAR size re-derived from System Page Size");
    assert.equal(dst.barAddress(0), 0x1_febf_0000n);
    assert.deepEqual(
      log,
      { flr: 0, sriov: [], command: [], messages: [], events: [] },
      "no hooks, no messages",
    );
    dst.configWrite(cap(dst, "msix") + 2, 2, 0x8000); // clear Function Mask
    assert.deepEqual(log.messages, [[1, 0xfee02000n, 0x31]], "restored pending vector delivers on unmask");
  });

  test("compact snapshot: same state in a smaller form; validateSnapshot checks without changing anything", () => {
    const { fn: src } = programmed();
    const compact = JSON.parse(JSON.stringify(src.snapshot({ compact: true })));
    assert.equal(compact.msix.version, 2);
    assert.ok(JSON.stringify(compact).length < JSON.stringify(src.snapshot()).length);
    const { fn: dst } = pf();
    const before = dst.config.bytes.slice();
    assert.deepEqual(dst.validateSnapshot(compact), { ok: true, ignoredFields: [] });
    assert.deepEqual(dst.config.bytes, before, "validation changes nothing");
    assert.equal(dst.validateSnapshot({ ...compact, version: 9 }).ok, false);
    assert.deepEqual(dst.restore(compact), { ok: true, ignoredFields: [] });
    assert.deepEqual(dst.config.bytes, src.config.bytes);
    assert.deepEqual(dst.msix.snapshot(), src.msix.snapshot());
  });

  test("unknown field names are ignored and listed", () => {
    const { fn } = programmed();
    const snap = { ...fn.snapshot(), config: { ...fn.snapshot().config, "future.register": 5 } };
    assert.deepEqual(pf().fn.restore(snap), { ok: true, ignoredFields: ["future.register"] });
  });

  test("foreign or corrupt state is refused and changes nothing", () => {
    const good = programmed().fn.snapshot();
    const { config } = good;
    const withConfig = (patch: Record<string, unknown>) => ({ ...good, config: { ...config, ...patch } });
    const { "header.command": _dropped, ...missingCommand } = config;
    const bad: [unknown, string][] = [
      ["nope", "state-format"],
      [{ ...good, format: "other" }, "state-format"],
      [{ ...good, version: 9 }, "state-version"],
      [{ ...good, identity: { ...good.identity, deviceId: 0x5846 } }, "state-identity"],
      [{ ...good, identity: { ...good.identity, isVirtualFunction: true } }, "state-identity"],
      [{ ...good, config: missingCommand }, "state-missing-field"],
      [withConfig({ "header.command": 0x10000 }), "state-bad-value"],
      [withConfig({ "sriov.numVfs": 9 }), "state-bad-value"],
      [withConfig({ "sriov.systemPageSize": 0x3 }), "state-bad-value"],
      [withConfig({ "pm.pmcsr": 0x1 }), "state-bad-value"],
      [{ ...good, msix: { ...good.msix, vectors: 32 } }, "state-vector-count"],
    ];
    const { fn } = pf();
    const before = fn.config.bytes.slice();
    for (const [s, code] of bad) {
      const r = fn.restore(s);
      assert.equal(r.ok, false, code);
      if (!r.ok) assert.equal(r.error.code, code);
    }
    assert.deepEqual(fn.config.bytes, before);
  });
});

describe("PciFunction config fuzz", () => {
  test("random config writes (any offset, size, value) never throw and never change read-only bits", () => {
    // Offsets aimed at every defined register (± a few bytes, for unaligned accesses), plus anywhere.
    const registerOffsets = [...new Set(new PciFunction(PF).config.fields().map((f) => f.offset))];
    const access = fc.record({
      offset: fc.oneof(
        fc.tuple(fc.constantFrom(...registerOffsets), fc.integer({ min: -3, max: 3 })).map(([o, d]) => o + d),
        fc.integer({ min: 0, max: 0x17f }),
        fc.integer({ min: -8, max: 4200 }),
      ),
      sizeBytes: fc.oneof(fc.constantFrom(1, 2, 4), fc.integer({ min: -1, max: 9 })),
      value: fc.oneof(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0x1f }),
        fc.constantFrom(0xffffffff, -1, 0x8000, 0x0001),
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.double(),
      ),
    });
    const scenario = fc.record({
      descriptor: fc.constantFrom(PF, VF, { ...VF, presentAsPhysical: false }),
      accesses: fc.array(access, { minLength: 1, maxLength: 80, size: "max" }),
    });
    fc.assert(
      fc.property(scenario, ({ descriptor, accesses }) => {
        const { fn } = pf(descriptor);
        const initial = fn.config.bytes.slice();
        const writable = fn.config.writeMask.map((m, i) => m | fn.config.w1cMask[i]!);
        for (const a of accesses) {
          fn.configWrite(a.offset, a.sizeBytes, a.value);
          fn.configRead(a.offset, a.sizeBytes);
          fn.signal(0);
        }
        for (let i = 0; i < 4096; i++) {
          const changed = initial[i]! ^ fn.config.bytes[i]!;
          if ((changed & ~writable[i]!) !== 0) {
            assert.fail(
              `read-only bits of byte 0x${i.toString(16)} changed: ${initial[i]} → ${fn.config.bytes[i]}`,
            );
          }
        }
        assert.equal(walkCapabilities(fn.config).problem, undefined);
      }),
      { numRuns: 300 },
    );
  });
});
