// "<socket>.seq" on a real file: the daemon's writer and the plugin's reader.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ALL_SLOT, SEQ_RECORDS, SeqReader, SeqWriter, decodeSeq, encodeSeq, slotOf } from '../../src/seq-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('the sequence file', () => {
  it('keeps the overall number and one per scope record; a change to all scopes writes every record', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-seq-'));
    dirs.push(dir);
    const file = path.join(dir, 'api.sock.seq');
    const w = new SeqWriter(file, err => {
      throw err;
    });
    w.open(0o640);
    const r = new SeqReader(file);
    w.write('0123456789abcdef', 0n, 'all');
    expect(fs.statSync(file).size).toBe(64 * SEQ_RECORDS);
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
    const a = slotOf('pod:a');
    const b = slotOf('pod:b');
    expect(a).not.toBe(b);
    w.write('0123456789abcdef', 7n, [a]);
    expect(r.read(0)).toEqual({ instance: '0123456789abcdef', seq: 7n });
    expect(r.read(a)?.seq).toBe(7n);
    expect(r.read(b)?.seq).toBe(0n);
    expect(r.read(ALL_SLOT)?.seq).toBe(0n);
    w.write('0123456789abcdef', 8n, 'all');
    for (const k of [0, ALL_SLOT, a, b]) expect(r.read(k)?.seq).toBe(8n);
    // A new daemon run: its own instance everywhere.
    w.write('fedcba9876543210', 0n, 'all');
    expect(r.read(a)).toEqual({ instance: 'fedcba9876543210', seq: 0n });
    w.close();
    expect(fs.existsSync(file)).toBe(false);
    r.reopen();
    expect(r.read(0)).toBeUndefined();
  });

  it('detects a torn record (the number must appear twice)', () => {
    const rec = encodeSeq('0123456789abcdef', 41n);
    expect(decodeSeq(rec)).toEqual({ instance: '0123456789abcdef', seq: 41n });
    const torn = Buffer.concat([encodeSeq('0123456789abcdef', 42n).subarray(0, 40), rec.subarray(40)]);
    expect(decodeSeq(torn)).toBeUndefined();
  });

  it('spreads scopes over the records (2 and above; 0 and 1 are the overall and all-scopes ones)', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const k = slotOf(`pod:${i.toString(16).padStart(8, '0')}-0000-0000-0000-000000000000`);
      expect(k).toBeGreaterThanOrEqual(2);
      expect(k).toBeLessThan(SEQ_RECORDS);
      seen.add(k);
    }
    expect(seen.size).toBeGreaterThan(350);
  });
});
