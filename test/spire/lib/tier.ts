// The spire tier needs root (namespaces, cgroups, mounts) and Go (to build
// SPIRE 1.13.3 and the test programs). It skips with a printed reason where it
// cannot run, except in CI: there a skip is a failure.
import { describe, it } from 'vitest';
import { GO_SKIP, ROOT_SKIP, skipNote } from '../../helpers/env.js';

export const SPIRE_SKIP = ROOT_SKIP ?? GO_SKIP;

/** true when the tier must be skipped here; in CI (CI set) it registers a failing test instead. */
export function skipSpireTier(what: string): boolean {
  if (SPIRE_SKIP !== undefined && process.env['CI']) {
    describe(`spire: ${what}`, () => {
      it('runs in CI', () => {
        throw new Error(`the spire tier cannot run here (${SPIRE_SKIP}), and CI must not skip it`);
      });
    });
  }
  return skipNote(`spire (${what})`, SPIRE_SKIP);
}

/** Generous hook timeout: the first run on a fresh machine builds SPIRE (several minutes). */
export const BUILD_TIMEOUT_MS = 30 * 60_000;
