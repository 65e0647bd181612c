// Makes sure dist/ is built from the current src/ before a test spawns
// `node dist/main.js`. `npm test` builds first; this covers `npx vitest run <file>`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN_JS = join(REPO, 'dist', 'main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

// tsc builds incrementally (tsconfig.build.json): it rewrites only the files
// whose source changed, and nothing at all for a file touched but unchanged.
// So freshness is told by dist/.tsbuildinfo, which is touched after each build.
const BUILD_INFO = join(REPO, 'dist', '.tsbuildinfo');

function distIsFresh(): boolean {
  try {
    return statSync(join(REPO, 'dist', 'main.js')).isFile() && statSync(BUILD_INFO).mtimeMs >= newestMtime(join(REPO, 'src'));
  } catch {
    return false;
  }
}

/** Builds dist/ with tsc if any src/ file is newer; a lock dir keeps parallel workers from racing. */
export async function ensureBuilt(): Promise<void> {
  const lock = join(REPO, 'dist.build-lock');
  for (;;) {
    if (distIsFresh()) return;
    try {
      mkdirSync(lock);
    } catch {
      await new Promise(r => setTimeout(r, 200));
      continue;
    }
    try {
      if (!distIsFresh()) {
        execFileSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
          cwd: REPO,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const now = new Date();
        utimesSync(BUILD_INFO, now, now);
      }
    } finally {
      rmdirSync(lock);
    }
    return;
  }
}
