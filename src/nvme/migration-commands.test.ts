import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { checkDwordFields } from "./codec-test-helpers.ts";
import {
  decodeMigrationReceive,
  decodeMigrationReceiveDw0,
  decodeMigrationSend,
  encodeMigrationReceive,
  encodeMigrationReceiveDw0,
  encodeMigrationSend,
  MIGRATION_SEND_NUMD_ZEROS_BASED,
  type MigrationReceive,
  type MigrationSend,
  MigrationSendSel,
  migrationReceiveDataBytes,
  migrationReceiveNumd,
  migrationSendDataBytes,
  migrationSendNumd,
  SequenceIndicator,
  SuspendType,
} from "./migration-commands.ts";

function send(c: Parameters<typeof decodeMigrationSend>[0]): MigrationSend {
  const r = decodeMigrationSend(c);
  assert.ok(r.ok);
  return r.value;
}
function recv(c: Parameters<typeof decodeMigrationReceive>[0]): MigrationReceive {
  const r = decodeMigrationReceive(c);
  assert.ok(r.ok);
  return r.value;
}

test("Migration Send Suspend: SEL 0, CNTLID CDW11 15:0, STYPE 23:16, DUDMQ 31, UIDX CDW14 6:0", () => {
  checkDwordFields<MigrationSend>({
    base: { sel: MigrationSendSel.Suspend, cntlid: 0, stype: 0, dudmq: false, uidx: 0 },
    encode: encodeMigrationSend,
    decode: send,
    fields: [
      ["cntlid", "cdw11", 0, 16],
      ["stype", "cdw11", 16, 8],
      ["dudmq", "cdw11", 31, 1, "bool"],
      ["uidx", "cdw14", 0, 7],
    ],
    except: ["sel"],
  });
  // libvfn's example: DUDMQ | STYPE 1 | CNTLID.
  const c = encodeMigrationSend({ sel: 0, cntlid: 2, stype: SuspendType.Suspend, dudmq: true, uidx: 0 });
  assert.deepEqual(c, { cdw10: 0, cdw11: 0x80010002, cdw12: 0, cdw13: 0, cdw14: 0, cdw15: 0 });
});

test("Migration Send Resume: SEL 1, CNTLID", () => {
  checkDwordFields<MigrationSend>({
    base: { sel: MigrationSendSel.Resume, cntlid: 0, uidx: 0 },
    encode: encodeMigrationSend,
    decode: send,
    fields: [
      ["cntlid", "cdw11", 0, 16],
      ["uidx", "cdw14", 0, 7],
    ],
    except: ["sel"],
  });
  assert.equal(encodeMigrationSend({ sel: 1, cntlid: 9, uidx: 0 }).cdw10, 1);
});

test("Migration Send Set Controller State: SEQIND CDW10 17:16, CSVI CDW11 23:16, CSUUIDI 31:24, offset, NUMD", () => {
  const base: MigrationSend = {
    sel: MigrationSendSel.SetControllerState,
    seqind: 0,
    cntlid: 0,
    csvi: 0,
    csuuidi: 0,
    offset: 0,
    uidx: 0,
    numd: 0,
  };
  checkDwordFields<MigrationSend>({
    base,
    encode: encodeMigrationSend,
    decode: send,
    fields: [
      ["seqind", "cdw10", 16, 2],
      ["cntlid", "cdw11", 0, 16],
      ["csvi", "cdw11", 16, 8],
      ["csuuidi", "cdw11", 24, 8],
      ["uidx", "cdw14", 0, 7],
      ["numd", "cdw15", 0, 32],
    ],
    except: ["sel", "offset"],
  });
  const c = encodeMigrationSend({ ...base, seqind: SequenceIndicator.Entire, offset: 0x0000_0001_0000_0010 });
  assert.equal(c.cdw10, 0x00030002);
  assert.equal(c.cdw12, 0x10);
  assert.equal(c.cdw13, 1);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (offset) => {
      const v = { ...base, offset };
      assert.deepEqual(send(encodeMigrationSend(v)), v);
    }),
  );
});

test("Migration Receive Get Controller State: CSVI CDW10 23:16, CNTLID, CSUUIDI, CSUIDXP, offset, NUMD", () => {
  const base: MigrationReceive = {
    sel: 0,
    csvi: 0,
    cntlid: 0,
    csuuidi: 0,
    csuidxp: 0,
    offset: 0,
    uidx: 0,
    numd: 0,
  };
  checkDwordFields<MigrationReceive>({
    base,
    encode: encodeMigrationReceive,
    decode: recv,
    fields: [
      ["csvi", "cdw10", 16, 8],
      ["cntlid", "cdw11", 0, 16],
      ["csuuidi", "cdw11", 16, 8],
      ["csuidxp", "cdw11", 24, 8],
      ["uidx", "cdw14", 0, 7],
      ["numd", "cdw15", 0, 32],
    ],
    except: ["sel", "offset"],
  });
  const c = encodeMigrationReceive({ ...base, offset: 2 ** 33 + 4 });
  assert.equal(c.cdw12, 4);
  assert.equal(c.cdw13, 2);
  assert.equal(recv(c).offset, 2 ** 33 + 4);
  assert.equal(encodeMigrationReceiveDw0({ csup: true }), 1);
  assert.deepEqual(decodeMigrationReceiveDw0(0xfffffffe), { csup: false });
});

test("undefined SEL values are error values", () => {
  const s = decodeMigrationSend({ cdw10: 3 });
  assert.equal(s.ok, false);
  assert.equal(s.ok ? "" : s.error, "invalid-sel");
  const r = decodeMigrationReceive({ cdw10: 1 });
  assert.equal(r.ok, false);
});

test("NUMD: Send is a plain dword count, Receive is 0's based", () => {
  assert.equal(MIGRATION_SEND_NUMD_ZEROS_BASED, false);
  assert.equal(migrationSendDataBytes(4), 16);
  assert.equal(migrationSendNumd(16), 4);
  assert.equal(migrationReceiveDataBytes(3), 16);
  assert.equal(migrationReceiveNumd(16), 3);
  assert.throws(() => migrationReceiveNumd(0), RangeError);
  assert.throws(() => migrationSendNumd(6), RangeError);
});
