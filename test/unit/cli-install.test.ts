// `hexr-pid-mapper` as the README uses it: on PATH from a clone (bin/ on
// PATH, or npm link through package.json "bin") and in the images
// (/usr/local/bin/hexr-pid-mapper → /opt/hexr/bin/hexr-pid-mapper).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { DockerfileParser } from 'dockerfile-ast';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, REPO } from '../helpers/build.js';

const exec = promisify(execFile);
const LAUNCHER = path.join(REPO, 'bin', 'hexr-pid-mapper');
let tmp: string;

beforeAll(async () => {
  await ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-install-'));
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('bin/hexr-pid-mapper', () => {
  it('is what package.json "bin" names, executable, with a node shebang', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ 'hexr-pid-mapper': 'bin/hexr-pid-mapper' });
    expect(fs.statSync(LAUNCHER).mode & 0o111).toBe(0o111);
    expect(fs.readFileSync(LAUNCHER, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('runs by name once bin/ is on PATH, as the README says', async () => {
    const r = await exec('hexr-pid-mapper', ['help'], { env: { PATH: `${path.join(REPO, 'bin')}:${process.env['PATH']}` } });
    expect(r.stdout).toMatch(/^usage: hexr-pid-mapper <command>/);
  });

  it('runs through a symlink elsewhere on PATH (npm link, /usr/local/bin in the images)', async () => {
    const binDir = path.join(tmp, 'usr-local-bin');
    fs.mkdirSync(binDir);
    fs.symlinkSync(LAUNCHER, path.join(binDir, 'hexr-pid-mapper'));
    const r = await exec('hexr-pid-mapper', ['pidmap', '--help'], { env: { PATH: `${binDir}:${process.env['PATH']}` } });
    expect(r.stdout).toMatch(/^usage: hexr-pid-mapper pidmap/);
  });

  it('says what to do, without a stack trace, when dist/ is not built yet', async () => {
    const clone = path.join(tmp, 'clone');
    fs.mkdirSync(path.join(clone, 'bin'), { recursive: true });
    fs.copyFileSync(path.join(REPO, 'package.json'), path.join(clone, 'package.json'));
    fs.copyFileSync(LAUNCHER, path.join(clone, 'bin', 'hexr-pid-mapper'));
    fs.chmodSync(path.join(clone, 'bin', 'hexr-pid-mapper'), 0o755);
    const err = await exec(path.join(clone, 'bin', 'hexr-pid-mapper'), ['pidmap']).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toBe(`hexr-pid-mapper: ${clone}/ is not built yet: run \`npm ci && npm run build\` in it first\n`);
  });
});

describe('the images', () => {
  const dockerfile = DockerfileParser.parse(fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8'));
  /** Instructions of the runtime-base stage (both runtime images are built on it). */
  const runtimeBase = (() => {
    const out: string[] = [];
    let inStage = false;
    for (const ins of dockerfile.getInstructions()) {
      if (ins.getKeyword() === 'FROM') inStage = / AS runtime-base$/i.test(ins.getArgumentsContent() ?? '');
      else if (inStage) out.push(ins.getTextContent());
    }
    return out;
  })();

  it('copy the launcher next to dist/ and link it into /usr/local/bin, in the stage both runtime images share', () => {
    expect(runtimeBase).toContain('WORKDIR /opt/hexr');
    expect(runtimeBase).toContain('COPY --from=build /src/dist ./dist');
    expect(runtimeBase).toContain('COPY --from=build /src/bin/hexr-pid-mapper ./bin/hexr-pid-mapper');
    expect(runtimeBase.some(i => /^RUN .*ln -s \/opt\/hexr\/bin\/hexr-pid-mapper \/usr\/local\/bin\/hexr-pid-mapper\b/.test(i))).toBe(true);
    // The launcher finds ../dist/main.js from its real path: /opt/hexr/dist/main.js.
    expect(path.posix.resolve('/opt/hexr/bin', '../dist/main.js')).toBe('/opt/hexr/dist/main.js');
    expect(fs.readFileSync(LAUNCHER, 'utf8')).toContain("new URL('../dist/main.js', import.meta.url)");
  });
});
