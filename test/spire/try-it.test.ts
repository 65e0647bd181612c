// The README's "Try it with a real SPIRE on one host" script, run as a
// newcomer would: it must end with the two role SVIDs and a refusal for a
// process without a marker, and leave nothing running.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/build.js';
import { BUILD_TIMEOUT_MS, skipSpireTier } from './lib/tier.js';

const run = promisify(execFile);
const skip = skipSpireTier('try-it script');

describe.skipIf(skip)('scripts/try-spire.sh', () => {
  it(
    'starts server, daemon and agent, fetches the researcher and writer SVIDs as those processes, and cleans up',
    async () => {
      const before = new Set(fs.readdirSync('/tmp').filter(f => f.startsWith('hexr-try.')));
      const { stdout } = await run('bash', [path.join(REPO, 'scripts', 'try-spire.sh')], { cwd: REPO, env: { ...process.env, TMPDIR: '/tmp' }, maxBuffer: 16 * 1024 * 1024 });
      expect(stdout).toMatch(/^researcher\s+URI:spiffe:\/\/example\.org\/agent\/acme\/content-crew\/researcher$/m);
      expect(stdout).toMatch(/^writer\s+URI:spiffe:\/\/example\.org\/agent\/acme\/content-crew\/writer$/m);
      expect(stdout).toMatch(/^no marker\s+.*PermissionDenied desc = no identity issued$/m);
      const left = fs.readdirSync('/tmp').filter(f => f.startsWith('hexr-try.') && !before.has(f));
      expect(left).toEqual([]);
    },
    BUILD_TIMEOUT_MS,
  );
});
