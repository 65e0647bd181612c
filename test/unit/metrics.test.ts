// Labelled series exist from the first scrape, at 0, for every label value
// the daemon can produce, so dashboards and alerts work before any event.
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseMarkerBytes } from '../../src/core/marker.js';
import { ATTEST_RESULTS, EVICTION_CAUSES, MARKER_STATES, REJECTION_REASONS, createMetrics } from '../../src/daemon/metrics.js';
import { REPO } from '../helpers/build.js';

describe('createMetrics', () => {
  it('exports every known label value at 0 before anything happened', async () => {
    const text = await createMetrics().registry.metrics();
    const lines = text.split('\n');
    for (const v of ATTEST_RESULTS) expect(lines).toContain(`hexr_attest_calls_total{result="${v}"} 0`);
    for (const v of MARKER_STATES) expect(lines).toContain(`hexr_markers{state="${v}"} 0`);
    for (const v of REJECTION_REASONS) expect(lines).toContain(`hexr_marker_rejections_total{reason="${v}"} 0`);
    for (const v of EVICTION_CAUSES) expect(lines).toContain(`hexr_evictions_total{cause="${v}"} 0`);
    expect(lines).toContain('hexr_history_write_errors_total 0');
  });

  it('knows every rejection reason the marker parser gives (the label is the text before ":")', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.json().map(j => new TextEncoder().encode(j)), fc.jsonValue().map(v => new TextEncoder().encode(JSON.stringify(v)))), bytes => {
        const r = parseMarkerBytes(bytes, 256);
        if (!r.ok) expect(REJECTION_REASONS).toContain(r.reason.split(':')[0]);
      }),
      { numRuns: 2000 },
    );
  });

  it('knows every rejection reason of the secure file reader', () => {
    const src = fs.readFileSync(path.join(REPO, 'src', 'daemon', 'secure-fs.ts'), 'utf8');
    const found = [...src.matchAll(/reason: ['`]([a-z-]+)|UnsafePathError\('([a-z-]+)'/g)].map(m => (m[1] ?? m[2]) as string);
    expect(found.length).toBeGreaterThan(5);
    for (const r of found) expect(REJECTION_REASONS, r).toContain(r);
  });
});
