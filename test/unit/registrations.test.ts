import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { parseProcessContext, registrationsCommand, resourceName, shellQuote } from '../../src/cli/registrations.js';
import { ensureBuilt, MAIN_JS, REPO } from '../helpers/build.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-registrations-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

let n = 0;
function file(content: unknown, name = `ctx-${n++}.json`): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

const ctx = (role: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  agent_name: 'content-crew',
  tenant: 'acme',
  process_role: role,
  framework: 'crewai',
  trust_domain: 'example.org',
  ...extra,
});

/** Runs the command in-process, capturing stdout and stderr. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await registrationsCommand(args, {});
    return { code, out, err };
  } finally {
    vi.restoreAllMocks();
  }
}

/** Splits a generated command line the way sh would (single quotes only, as shellQuote emits). */
function shellSplit(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '\\') {
      cur += line[++i];
      inWord = true;
    } else if (c === ' ') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

describe('parseProcessContext', () => {
  it('keeps the known fields and ignores the rest', () => {
    const r = parseProcessContext(JSON.stringify({ ...ctx('writer'), resources: ['aws_s3:read'], extra: { x: 1 } }));
    expect(r).toEqual({ ok: true, context: { agent_name: 'content-crew', tenant: 'acme', process_role: 'writer', framework: 'crewai', trust_domain: 'example.org' } });
  });

  it('lists every problem of one file', () => {
    const r = parseProcessContext(JSON.stringify({ agent_name: 'bad name', process_role: '-x', framework: 3, trust_domain: 'Example.org' }));
    expect(r.ok).toBe(false);
    const problems = (r as { problems: string[] }).problems;
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/bad agent_name "bad name"/);
    expect(problems.join('\n')).toMatch(/missing tenant/);
    expect(problems.join('\n')).toMatch(/bad process_role "-x"/);
    expect(problems.join('\n')).toMatch(/bad framework 3/);
    expect(problems.join('\n')).toMatch(/bad trust_domain "Example.org"/);
  });

  it('refuses what is not a JSON object', () => {
    expect(parseProcessContext('[1]')).toEqual({ ok: false, problems: ['not a JSON object'] });
    expect(parseProcessContext('{').ok).toBe(false);
  });
});

describe('shellQuote and resourceName', () => {
  it('leaves safe words bare and single-quotes the rest', () => {
    expect(shellQuote('spiffe://example.org/agent/a/b/c')).toBe('spiffe://example.org/agent/a/b/c');
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
    expect(shellSplit(`x ${shellQuote("it's $HOME")} y`)).toEqual(['x', "it's $HOME", 'y']);
  });

  it('makes DNS-subdomain names', () => {
    expect(resourceName('Acme', 'content_crew', 'Writer.v2')).toBe('hexr-acme-content-crew-writer.v2');
  });
});

describe('hexr-pid-mapper registrations --format entries', () => {
  it('prints one spire-server entry create per role, scoped by namespace and service account', async () => {
    const files = ['researcher', 'writer', 'editor'].map(r => file(ctx(r)));
    const { code, out, err } = await run(files);
    expect(err).toBe('');
    expect(code).toBe(0);
    const cmds = out.split('\n').filter(l => l.startsWith('spire-server ')).map(shellSplit);
    expect(cmds).toHaveLength(3);
    expect(cmds[0]).toEqual([
      'spire-server', 'entry', 'create',
      '-parentID', 'spiffe://example.org/ns/spire/sa/spire-agent',
      '-spiffeID', 'spiffe://example.org/agent/acme/content-crew/researcher',
      '-selector', 'k8s:ns:acme',
      '-selector', 'k8s:sa:content-crew',
      '-selector', 'hexr:process-role:researcher',
      '-selector', 'hexr:agent-name:content-crew',
      '-selector', 'hexr:tenant:acme',
      '-hint', 'researcher',
    ]);
    expect(cmds.map(c => c[c.indexOf('-spiffeID') + 1])).toEqual(['researcher', 'writer', 'editor'].map(r => `spiffe://example.org/agent/acme/content-crew/${r}`));
    // With the default parent, the output says how to create the node alias.
    expect(out).toMatch(/^# {3}spire-server entry create -node -spiffeID spiffe:\/\/example\.org\/ns\/spire\/sa\/spire-agent /m);
  });

  it('honours --parent-id, --trust-domain, --namespace and --service-account, and merges duplicate roles', async () => {
    const a = file(ctx('writer', { trust_domain: undefined }));
    const b = file(ctx('writer', { trust_domain: undefined }));
    const { code, out } = await run(['--trust-domain', 'corp.test', '--parent-id', 'spiffe://corp.test/k8s/node-alias', '--namespace', 'acme-prod', '--service-account', 'crew', a, b]);
    expect(code).toBe(0);
    const cmds = out.split('\n').filter(l => l.startsWith('spire-server ')).map(shellSplit);
    expect(cmds).toHaveLength(1);
    expect(cmds[0]).toEqual(expect.arrayContaining(['spiffe://corp.test/k8s/node-alias', 'spiffe://corp.test/agent/acme/content-crew/writer', 'k8s:ns:acme-prod', 'k8s:sa:crew']));
    expect(out).not.toMatch(/entry create -node/);
  });

  it('reports every bad file at once, prints nothing, and exits 2', async () => {
    const good = file(ctx('writer'));
    const badName = file(ctx('bad role'));
    const notJson = file('{nope');
    const noTd = file(ctx('editor', { trust_domain: undefined }));
    const upperTenant = file(ctx('editor', { tenant: 'Acme' }));
    const missing = path.join(tmp, 'does-not-exist.json');
    const { code, out, err } = await run([good, badName, notJson, noTd, upperTenant, missing]);
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toContain('5 problem(s), nothing generated');
    expect(err).toContain(`${badName}: bad process_role "bad role"`);
    expect(err).toContain(`${notJson}: not JSON`);
    expect(err).toContain(`${noTd}: no trust_domain`);
    expect(err).toContain(`${upperTenant}: namespace "Acme" (the tenant) is not a valid Kubernetes namespace name`);
    expect(err).toContain(`${missing}: cannot read: ENOENT`);
    expect(err).not.toContain(`${good}:`);
  });

  it('refuses a parent ID of another trust domain', async () => {
    const { code, err } = await run(['--parent-id', 'spiffe://other.org/x', file(ctx('writer'))]);
    expect(code).toBe(2);
    expect(err).toMatch(/--parent-id is in trust domain "other\.org", the registration in "example\.org"/);
  });

  it('rejects bad usage with exit 2', async () => {
    expect((await run([])).code).toBe(2);
    const r = await run(['--format', 'yaml', '--parent-id', 'not-an-id', '--pod-label', 'x', file(ctx('writer'))]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--format must be entries or clusterspiffeid/);
    expect(r.err).toMatch(/--parent-id "not-an-id" is not a SPIFFE ID/);
    expect(r.err).toMatch(/--pod-label "x" must be KEY=VALUE/);
    expect((await run(['--bogus', file(ctx('writer'))])).code).toBe(2);
    expect((await run(['--help'])).code).toBe(0);
  });
});

describe('hexr-pid-mapper registrations --format clusterspiffeid', () => {
  it('prints one ClusterSPIFFEID per role with pod-UID and role selector templates', async () => {
    const files = ['researcher', 'writer'].map(r => file(ctx(r)));
    const { code, out } = await run(['--format', 'clusterspiffeid', ...files]);
    expect(code).toBe(0);
    const docs = YAML.parseAllDocuments(out).map(d => {
      expect(d.errors).toEqual([]);
      return d.toJS() as Record<string, any>;
    });
    expect(docs).toHaveLength(2);
    expect(docs[1]).toEqual({
      apiVersion: 'spire.spiffe.io/v1alpha1',
      kind: 'ClusterSPIFFEID',
      metadata: { name: 'hexr-acme-content-crew-writer', labels: { 'app.kubernetes.io/part-of': 'hexr' } },
      spec: {
        spiffeIDTemplate: 'spiffe://example.org/agent/acme/content-crew/writer',
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'acme' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'content-crew' } },
        workloadSelectorTemplates: ['k8s:pod-uid:{{ .PodMeta.UID }}', 'hexr:process-role:writer', 'hexr:agent-name:content-crew', 'hexr:tenant:acme'],
        hint: 'writer',
      },
    });
  });

  it('uses --pod-label as the pod selector, and refuses --parent-id (the controller sets parents)', async () => {
    const f = file(ctx('writer'));
    const ok = await run(['--format', 'clusterspiffeid', '--pod-label', 'hexr.dev/agent=content-crew', f]);
    expect(ok.code).toBe(0);
    expect((YAML.parse(ok.out) as Record<string, any>)['spec']['podSelector']).toEqual({ matchLabels: { 'hexr.dev/agent': 'content-crew' } });
    const bad = await run(['--format', 'clusterspiffeid', '--parent-id', 'spiffe://example.org/x', f]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--parent-id applies to --format entries only/);
  });

  it('refuses two roles whose resource names would collide', async () => {
    const { code, err } = await run(['--format', 'clusterspiffeid', file(ctx('Writer')), file(ctx('writer'))]);
    expect(code).toBe(2);
    expect(err).toMatch(/ClusterSPIFFEID name "hexr-acme-content-crew-writer" is also produced by/);
  });
});

describe('daemonset/registrations', () => {
  const dir = path.join(REPO, 'daemonset', 'registrations');
  const contexts = ['researcher', 'writer', 'editor'].map(r => `contexts/content-crew-${r}.json`);

  it('are exactly what `hexr-pid-mapper registrations` generates from the example contexts', async () => {
    await ensureBuilt();
    const gen = (extra: string[]): string => execFileSync(process.execPath, [MAIN_JS, 'registrations', ...extra, ...contexts], { cwd: dir, encoding: 'utf8' });
    expect(fs.readFileSync(path.join(dir, 'entries.sh'), 'utf8')).toBe(gen([]));
    expect(fs.readFileSync(path.join(dir, 'clusterspiffeid.yaml'), 'utf8')).toBe(gen(['--format', 'clusterspiffeid']));
  });
});
