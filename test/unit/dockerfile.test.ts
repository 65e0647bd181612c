// The Dockerfile cannot be built here (no Docker engine), so it is checked
// statically: dockerfile-utils diagnostics, then our own invariants over the
// dockerfile-ast parse, and every path the images rely on is checked against
// the repository and the built dist/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Instruction, type JSONInstruction, type ModifiableInstruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { parseHcl, type HclObject } from '../../src/core/hcl.js';
import { ensureBuilt, REPO } from '../helpers/build.js';

const DOCKERFILE = path.join(REPO, 'Dockerfile');
const text = fs.readFileSync(DOCKERFILE, 'utf8');
const lines = text.split('\n');
const dockerfile = DockerfileParser.parse(text);
/** Where the runtime images put the package (WORKDIR of runtime-base). */
const APP_DIR = '/opt/hexr/';
const LAUNCHER = path.join(REPO, 'bin', 'hexr-plugin.mjs');
/** The SPIRE version the spire tier tests (test/go/go.mod pins it): the image must ship the same one. */
const TESTED_SPIRE = /^\s*github\.com\/spiffe\/spire v(\d+\.\d+\.\d+)\b/m.exec(fs.readFileSync(path.join(REPO, 'test', 'go', 'go.mod'), 'utf8'))![1]!;

interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

function stages(): Stage[] {
  const out: Stage[] = [];
  for (const ins of dockerfile.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const args = ins.getArguments().map(a => a.getValue());
      const as = args.findIndex(a => a.toUpperCase() === 'AS');
      out.push({ name: as >= 0 ? (args[as + 1] as string) : '', base: args.find(a => !a.startsWith('--')) as string, instructions: [] });
    } else out.at(-1)?.instructions.push(ins);
  }
  return out;
}

function stage(name: string): Stage {
  const s = stages().find(st => st.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
}

function of(s: Stage, keyword: string): Instruction[] {
  return s.instructions.filter(i => i.getKeyword() === keyword);
}

function execForm(ins: Instruction): string[] {
  return (ins as JSONInstruction).getJSONStrings().map(j => j.getJSONValue());
}

function fromFlag(ins: Instruction): string | undefined {
  return (ins as ModifiableInstruction)
    .getFlags()
    .find(f => f.getName() === 'from')
    ?.getValue() ?? undefined;
}

/** COPY src... dest, without flags. */
function copyArgs(ins: Instruction): { sources: string[]; dest: string } {
  const args = ins.getArguments().map(a => a.getValue()).filter(a => !a.startsWith('--'));
  return { sources: args.slice(0, -1), dest: args.at(-1) as string };
}

/** The comment lines directly above an instruction. */
function commentAbove(ins: Instruction): string {
  const out: string[] = [];
  for (let i = ins.getRange().start.line - 1; i >= 0 && (lines[i] as string).startsWith('#'); i--) out.unshift(lines[i] as string);
  return out.join('\n');
}

/** An image reference pinned to an exact version: name:X.Y.Z[-variant][@sha256:...]. */
function isPinnedImage(ref: string): boolean {
  const m = /^([a-z0-9][a-z0-9._/-]*(?::\d+)?(?:\/[a-z0-9._-]+)*):([A-Za-z0-9._-]+)(@sha256:[0-9a-f]{64})?$/.exec(ref);
  if (!m) return false;
  return /^v?\d+\.\d+\.\d+(-[a-z0-9][a-z0-9.-]*)?$/.test(m[2] as string);
}

function inImage(p: string): string {
  expect(p.startsWith(APP_DIR), `${p} is under ${APP_DIR}`).toBe(true);
  return path.join(REPO, p.slice(APP_DIR.length));
}

function spireConf(): HclObject {
  const doc = parseHcl(fs.readFileSync(path.join(REPO, 'daemonset', 'spire-agent-hexr.conf'), 'utf8')) as HclObject;
  return ((doc['plugins'] as HclObject)['WorkloadAttestor'] as HclObject)['hexr'] as HclObject;
}

beforeAll(async () => {
  await ensureBuilt();
});

describe('Dockerfile', () => {
  it('has no dockerfile-utils diagnostics', () => {
    expect(validate(text)).toEqual([]);
  });

  it('recognises pinned and unpinned image references', () => {
    expect(isPinnedImage('node:22.23.3-bookworm-slim')).toBe(true);
    expect(isPinnedImage('ghcr.io/spiffe/spire-agent:1.15.3')).toBe(true);
    expect(isPinnedImage(`node:22.23.3-bookworm-slim@sha256:${'a'.repeat(64)}`)).toBe(true);
    for (const bad of ['node', 'node:latest', 'node:22', 'node:22-bookworm-slim', 'node:22.23-bookworm-slim', 'gcr.io/distroless/nodejs22-debian12']) {
      expect(isPinnedImage(bad), bad).toBe(false);
    }
  });

  it('pins every external base image to an exact version, and names every stage', () => {
    const seen: string[] = [];
    for (const s of stages()) {
      expect(s.name, `FROM ${s.base} has an AS name`).not.toBe('');
      if (!seen.includes(s.base)) expect(isPinnedImage(s.base), `FROM ${s.base}`).toBe(true);
      seen.push(s.name);
    }
    expect(seen).toEqual(expect.arrayContaining(['build', 'runtime-base', 'daemon', 'spire-upstream', 'spire-agent']));
  });

  it('uses exec form for every ENTRYPOINT and CMD', () => {
    const ins = dockerfile.getInstructions().filter(i => ['ENTRYPOINT', 'CMD'].includes(i.getKeyword()));
    expect(ins.length).toBeGreaterThanOrEqual(4);
    for (const i of ins) {
      expect((i as JSONInstruction).getOpeningBracket(), `${i.getKeyword()} at line ${i.getRange().start.line + 1}`).not.toBeNull();
      expect(execForm(i).length).toBeGreaterThan(0);
    }
  });

  it('never ADDs from a URL or git (ADD is not used at all)', () => {
    const adds = dockerfile.getInstructions().filter(i => i.getKeyword() === 'ADD');
    for (const a of adds) expect(a.getArgumentsContent() ?? '').not.toMatch(/(:\/\/|git@)/);
    expect(adds).toEqual([]);
  });

  it('builds and installs dependencies as the non-root node user', () => {
    const build = stage('build');
    const users = of(build, 'USER');
    expect(users.map(u => u.getArgumentsContent())).toEqual(['node']);
    const userLine = (users[0] as Instruction).getRange().start.line;
    for (const run of of(build, 'RUN').filter(r => /\bnpm\b/.test(r.getArgumentsContent() ?? ''))) {
      expect(run.getRange().start.line).toBeGreaterThan(userLine);
    }
    const runs = of(build, 'RUN').map(r => r.getArgumentsContent() ?? '');
    expect(runs.some(r => /^npm ci\b/.test(r))).toBe(true);
    expect(runs.some(r => r.includes('npm run build') && r.includes('npm prune --omit=dev'))).toBe(true);
  });

  it('says why each runtime target runs as root, right above its USER', () => {
    for (const name of ['daemon', 'spire-agent']) {
      const users = of(stage(name), 'USER');
      const last = users.at(-1);
      expect(last, `${name} sets USER explicitly`).toBeDefined();
      const user = (last as Instruction).getArgumentsContent() ?? '';
      if (/^(0|root)(:(0|root))?$/.test(user)) expect(commentAbove(last as Instruction), name).toMatch(/Runs as uid 0/);
    }
  });

  it('ships dist/, proto/ (next to dist/, where protos.js looks), package.json and node_modules from the build stage', () => {
    const rb = stage('runtime-base');
    expect(of(rb, 'WORKDIR').map(w => w.getArgumentsContent())).toEqual([APP_DIR.replace(/\/$/, '')]);
    const copies = of(rb, 'COPY').map(c => ({ from: fromFlag(c), ...copyArgs(c) }));
    for (const what of ['dist', 'proto', 'package.json', 'node_modules']) {
      expect(copies, what).toContainEqual({ from: 'build', sources: [`/src/${what}`], dest: `./${what}` });
    }
    // src/protos.ts resolves new URL('../proto/', import.meta.url) from dist/protos.js.
    expect(fileURLToPath(new URL('../proto/', `file://${APP_DIR}dist/protos.js`))).toBe(`${APP_DIR}proto/`);
    expect(fs.existsSync(path.join(REPO, 'dist', 'protos.js'))).toBe(true);
    // npm and friends are removed from the runtime images.
    expect(of(rb, 'RUN').map(r => r.getArgumentsContent() ?? '').join(' ')).toMatch(/rm -rf .*\/usr\/local\/bin\/npm\b/);
  });

  it('copies only paths that exist and that .dockerignore lets into the context', () => {
    const allowed = fs
      .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
      .split('\n')
      .filter(l => l.startsWith('!'))
      .map(l => l.slice(1).replace(/\/\*\*$/, ''));
    const copies = dockerfile.getInstructions().filter(i => i.getKeyword() === 'COPY' && fromFlag(i) === undefined);
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      for (const src of copyArgs(c).sources) {
        expect(fs.existsSync(path.join(REPO, src)), `${src} exists`).toBe(true);
        expect(allowed, `${src} is not excluded by .dockerignore`).toContain(src);
      }
    }
  });

  it('starts the daemon from dist/main.js with the image’s node, and defaults to the daemon command', () => {
    const d = stage('daemon');
    expect(d.base).toBe('runtime-base');
    const [entry] = of(d, 'ENTRYPOINT');
    const argv = execForm(entry as Instruction);
    expect(argv).toEqual(['/usr/local/bin/node', '--optimize-for-size', `${APP_DIR}dist/main.js`]);
    expect(fs.existsSync(inImage(argv[2] as string))).toBe(true);
    expect(of(d, 'CMD').map(execForm)).toEqual([['daemon']]);
  });

  it('names the tested SPIRE version in the install guide and the image tags it suggests', () => {
    const guide = fs.readFileSync(path.join(REPO, 'daemonset', 'README.md'), 'utf8');
    expect(guide).toContain(`ghcr.io/spiffe/spire-agent:${TESTED_SPIRE}`);
    expect(guide).toContain(`hexr-spire-agent:${TESTED_SPIRE}-hexr`);
    const versions = [...guide.matchAll(/spire-agent:(\d+\.\d+\.\d+)/g)].map(m => m[1]);
    expect(new Set(versions)).toEqual(new Set([TESTED_SPIRE]));
    expect(text).toContain(`hexr-spire-agent:${TESTED_SPIRE}-hexr`);
  });

  it('puts the upstream spire-agent binary, our dist/ and the plugin launcher in the spire-agent image', () => {
    expect(TESTED_SPIRE).toBe('1.13.3');
    expect(stage('spire-upstream').base).toBe(`ghcr.io/spiffe/spire-agent:${TESTED_SPIRE}`);
    const sa = stage('spire-agent');
    expect(sa.base).toBe('runtime-base');
    const copies = of(sa, 'COPY').map(c => ({ from: fromFlag(c), ...copyArgs(c) }));
    expect(copies).toContainEqual({ from: 'spire-upstream', sources: ['/opt/spire/bin/spire-agent'], dest: '/opt/spire/bin/spire-agent' });
    expect(copies).toContainEqual({ from: 'build', sources: ['/src/bin/hexr-plugin.mjs'], dest: `${APP_DIR}bin/hexr-plugin.mjs` });
    expect(execForm(of(sa, 'ENTRYPOINT')[0] as Instruction)).toEqual(['/opt/spire/bin/spire-agent', 'run']);
  });
});

describe('plugin launcher and SPIRE plugin_cmd', () => {
  it('is what plugin_cmd names, and plugin_checksum is the sha256 of exactly that file', () => {
    const hexr = spireConf();
    expect(hexr['plugin_cmd']).toBe(`${APP_DIR}bin/hexr-plugin.mjs`);
    expect(fs.existsSync(inImage(hexr['plugin_cmd'] as string))).toBe(true);
    expect(hexr['plugin_checksum']).toMatch(/^[0-9a-f]{64}$/);
    expect(hexr['plugin_checksum']).toBe(createHash('sha256').update(fs.readFileSync(LAUNCHER)).digest('hex'));
    // The launcher is the plugin command: it takes no arguments.
    expect(hexr['plugin_args']).toEqual([]);
  });

  it('uses the image’s node by absolute path (no #!/usr/bin/env PATH lookup) and imports dist/ relative to itself', () => {
    const src = fs.readFileSync(LAUNCHER, 'utf8');
    const shebang = (src.split('\n')[0] as string).slice(2);
    expect(shebang).toBe(execForm(of(stage('daemon'), 'ENTRYPOINT')[0] as Instruction)[0]);
    expect(fs.statSync(LAUNCHER).mode & 0o111).not.toBe(0);
    const imports = [...src.matchAll(/^import .* from '([^']+)';$/gm)].map(m => m[1] as string);
    expect(imports).toEqual(['../dist/cli/plugin.js']);
    for (const i of imports) expect(fs.existsSync(path.resolve(path.dirname(LAUNCHER), i))).toBe(true);
  });

  it('refuses a direct launch the way a go-plugin binary does', () => {
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
    const r = spawnSync(process.execPath, [LAUNCHER], { env, encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/This binary is a plugin/);
  });

  describe('when SPIRE launches it', () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-launcher-'));
    });
    afterAll(() => {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('prints the go-plugin handshake line and stops on SIGTERM', async () => {
      const child = spawn(process.execPath, [LAUNCHER], {
        env: { PATH: process.env['PATH'] ?? '', WorkloadAttestor: 'WorkloadAttestor', PLUGIN_PROTOCOL_VERSIONS: '1', PLUGIN_MIN_PORT: '10000', PLUGIN_MAX_PORT: '25000', PLUGIN_UNIX_SOCKET_DIR: dir },
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      try {
        const line = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout.setEncoding('utf8');
          child.stdout.on('data', (d: string) => {
            out += d;
            if (out.includes('\n')) resolve(out.split('\n')[0] as string);
          });
          child.on('exit', code => reject(new Error(`exited ${code} before the handshake`)));
        });
        const [core, app, net, addr, proto] = line.split('|');
        expect([core, app, net, proto]).toEqual(['1', '1', 'unix', 'grpc']);
        expect(path.dirname(addr as string)).toBe(dir);
      } finally {
        const exited = new Promise(r => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      expect(child.exitCode).toBe(0);
    });
  });
});
