import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { safeJson } from '../../src/core/escape.js';
import { jsonWithList } from '../../src/daemon/json-chunks.js';
import { TimeSlice } from '../../src/daemon/time-slice.js';

async function text(chunks: AsyncIterable<string>): Promise<string> {
  let s = '';
  for await (const c of chunks) s += c;
  return s;
}

describe('jsonWithList', () => {
  it('gives exactly the text of safeJson(value, 2), for any head and list, yielding or not', async () => {
    let nonEmpty = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.string().filter(k => k !== 'entries'), fc.jsonValue()),
        fc.array(fc.oneof(fc.jsonValue(), fc.record({ name: fc.string({ unit: 'binary' }), n: fc.integer() }))),
        fc.boolean(),
        fc.boolean(),
        async (head, items, yieldAlways, transform) => {
          if (items.length > 0) nonEmpty++;
          const slice = yieldAlways ? Object.assign(new TimeSlice(), { due: () => true }) : undefined;
          const toItem = (x: unknown): unknown => ({ row: x, n: 1 }); // as /debug/pidmap makes rows from mappings
          const want = safeJson({ ...head, entries: transform ? items.map(toItem) : items }, 2);
          expect(await text(jsonWithList(head, 'entries', items, slice, transform ? toItem : undefined))).toBe(want);
        },
      ),
      { numRuns: 300 },
    );
    expect(nonEmpty).toBeGreaterThan(100); // the generator reaches the list-building branch
  });

  it('lets other callbacks run while it builds a long list', async () => {
    const items = Array.from({ length: 2000 }, (_, i) => ({ i, text: 'x'.repeat(50) }));
    let ran = 0;
    const slice = Object.assign(new TimeSlice(), { due: (): boolean => true });
    const t = setImmediate(() => ran++);
    const chunks: string[] = [];
    for await (const c of jsonWithList({ count: items.length }, 'entries', items, slice)) chunks.push(c);
    clearImmediate(t);
    expect(ran).toBe(1);
    expect(chunks.length).toBeGreaterThan(1); // handed on in pieces, never one huge string
    expect(chunks.join('')).toBe(safeJson({ count: items.length, entries: items }, 2));
  });
});
