// `hexr-pid-mapper registrations`: SPIRE registrations for the roles of an
// agent, generated from the process-context JSON files that `hexr build`
// writes ({agent_name, tenant, process_role, framework, trust_domain}).
//
//   --format entries          one `spire-server entry create ...` per role
//   --format clusterspiffeid  one spire-controller-manager ClusterSPIFFEID per role
//
// Every registration ANDs the hexr role selectors with a pod-scoped selector
// (README "Trust model"): a marker is only a claim, and SPIRE gives a workload
// every entry whose selectors are a subset of its own.
//   entries          k8s:ns + k8s:sa (static: pod UIDs change on every restart)
//   clusterspiffeid  k8s:pod-uid:{{ .PodMeta.UID }}, rendered per pod by the
//                    controller, for the pods that namespaceSelector and
//                    podSelector pick.
// Inputs are checked as a whole: every problem of every file is reported, and
// nothing is printed unless all files are good (exit 2 otherwise).
import * as fs from 'node:fs';
import { NAME_RE } from '../core/marker.js';
import { parseCommand } from './args.js';
import type { Env } from './context.js';

const USAGE = `usage: hexr-pid-mapper registrations [options] FILE.json...

Generates SPIRE registrations for the process contexts written by \`hexr build\`
({agent_name, tenant, process_role, framework, trust_domain}, one per file).

options:
  --format entries|clusterspiffeid   spire-server entry commands (default) or ClusterSPIFFEID YAML
  --trust-domain TD                  overrides trust_domain of the files (required if a file has none)
  --parent-id ID                     entries: parent SPIFFE ID (default spiffe://TD/ns/spire/sa/spire-agent,
                                     the node alias of the SPIRE agents)
  --namespace NS                     Kubernetes namespace of the agent's pods (default: the tenant)
  --service-account SA               entries: service account of the pods (default: the agent name)
  --pod-label KEY=VALUE              clusterspiffeid: pod label to select (default app.kubernetes.io/name=AGENT)
`;

/** A process context as `hexr build` writes it; unknown fields are ignored. */
export interface ProcessContext {
  readonly agent_name: string;
  readonly tenant: string;
  readonly process_role: string;
  readonly framework?: string;
  readonly trust_domain?: string;
}

export interface Registration {
  readonly trustDomain: string;
  readonly tenant: string;
  readonly agent: string;
  readonly role: string;
  readonly framework: string | undefined;
  readonly spiffeId: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly source: string;
}

export type Format = 'entries' | 'clusterspiffeid';

export interface RegistrationOptions {
  readonly format: Format;
  readonly trustDomain?: string | undefined;
  readonly parentId?: string | undefined;
  readonly namespace?: string | undefined;
  readonly serviceAccount?: string | undefined;
  readonly podLabel?: { readonly key: string; readonly value: string } | undefined;
}

/** Process-context files are small build artifacts; anything larger is a mistake. */
const MAX_CONTEXT_BYTES = 64 * 1024;
/** SPIFFE trust domain name: lowercase letters, digits, dots, dashes, underscores. */
const TRUST_DOMAIN_RE = /^[a-z0-9._-]{1,255}$/;
/** SPIFFE ID: spiffe://TD/path, path segments of [A-Za-z0-9._-], not "." or "..". */
const SPIFFE_ID_RE = /^spiffe:\/\/([a-z0-9._-]{1,255})((?:\/[A-Za-z0-9._-]+)+)$/;
/** Kubernetes namespace: DNS-1123 label. */
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Kubernetes service account name: DNS-1123 subdomain. */
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Label key: optional DNS-subdomain prefix, then a name of up to 63 characters. */
const LABEL_KEY_RE = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** Label value: up to 63 characters, alphanumeric at both ends. */
const LABEL_VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Parses one process-context file's text; every problem is listed. */
export function parseProcessContext(text: string): { ok: true; context: ProcessContext } | { ok: false; problems: string[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [`not JSON: ${(err as Error).message}`] };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, problems: ['not a JSON object'] };
  const obj = doc as Record<string, unknown>;
  const problems: string[] = [];
  const name = (key: string, required: boolean): string | undefined => {
    const v = own(obj, key);
    if (v === undefined) {
      if (required) problems.push(`missing ${key}`);
      return undefined;
    }
    if (typeof v !== 'string' || !NAME_RE.test(v)) {
      problems.push(`bad ${key} ${JSON.stringify(v)}: must match ${NAME_RE.source}`);
      return undefined;
    }
    return v;
  };
  const agent_name = name('agent_name', true);
  const tenant = name('tenant', true);
  const process_role = name('process_role', true);
  const framework = name('framework', false);
  const td = own(obj, 'trust_domain');
  let trust_domain: string | undefined;
  if (td !== undefined) {
    if (typeof td !== 'string' || !TRUST_DOMAIN_RE.test(td)) problems.push(`bad trust_domain ${JSON.stringify(td)}: must match ${TRUST_DOMAIN_RE.source}`);
    else trust_domain = td;
  }
  if (problems.length > 0 || agent_name === undefined || tenant === undefined || process_role === undefined) return { ok: false, problems };
  // A fresh object: nothing of the input is copied but the checked fields.
  return {
    ok: true,
    context: {
      agent_name,
      tenant,
      process_role,
      ...(framework !== undefined ? { framework } : {}),
      ...(trust_domain !== undefined ? { trust_domain } : {}),
    },
  };
}

/** Turns parsed contexts into registrations; problems name their source. */
export function buildRegistrations(
  inputs: readonly { source: string; context: ProcessContext }[],
  opts: RegistrationOptions,
): { registrations: Registration[]; problems: string[] } {
  const problems: string[] = [];
  const registrations: Registration[] = [];
  const seen = new Map<string, string>();
  const names = new Map<string, string>();
  for (const { source, context: c } of inputs) {
    const before = problems.length;
    const trustDomain = opts.trustDomain ?? c.trust_domain;
    if (trustDomain === undefined) problems.push(`${source}: no trust_domain (add it to the file or pass --trust-domain)`);
    const namespace = opts.namespace ?? c.tenant;
    if (!DNS_LABEL_RE.test(namespace)) {
      problems.push(`${source}: namespace "${namespace}"${opts.namespace === undefined ? ' (the tenant)' : ''} is not a valid Kubernetes namespace name; pass --namespace`);
    }
    const serviceAccount = opts.serviceAccount ?? c.agent_name;
    if (opts.format === 'entries' && (serviceAccount.length > 253 || !DNS_SUBDOMAIN_RE.test(serviceAccount))) {
      problems.push(`${source}: service account "${serviceAccount}"${opts.serviceAccount === undefined ? ' (the agent name)' : ''} is not a valid Kubernetes name; pass --service-account`);
    }
    if (opts.format === 'clusterspiffeid' && opts.podLabel === undefined && !LABEL_VALUE_RE.test(c.agent_name)) {
      problems.push(`${source}: agent name "${c.agent_name}" is not a valid label value for the pod selector; pass --pod-label`);
    }
    if (opts.format === 'entries' && opts.parentId !== undefined && trustDomain !== undefined) {
      const m = SPIFFE_ID_RE.exec(opts.parentId);
      if (m && m[1] !== trustDomain) problems.push(`${source}: --parent-id is in trust domain "${m[1]}", the registration in "${trustDomain}"`);
    }
    if (problems.length > before || trustDomain === undefined) continue;

    const spiffeId = `spiffe://${trustDomain}/agent/${c.tenant}/${c.agent_name}/${c.process_role}`;
    const key = `${spiffeId} ${namespace} ${serviceAccount}`;
    if (seen.has(key)) continue; // the same role twice: one registration
    seen.set(key, source);
    const name = resourceName(c.tenant, c.agent_name, c.process_role);
    const clash = names.get(name);
    if (opts.format === 'clusterspiffeid' && clash !== undefined) {
      problems.push(`${source}: ClusterSPIFFEID name "${name}" is also produced by ${clash}; rename a role`);
      continue;
    }
    names.set(name, source);
    registrations.push({ trustDomain, tenant: c.tenant, agent: c.agent_name, role: c.process_role, framework: c.framework, spiffeId, namespace, serviceAccount, source });
  }
  return { registrations, problems };
}

/** ClusterSPIFFEID names are DNS subdomains: lowercase, no underscores. */
export function resourceName(tenant: string, agent: string, role: string): string {
  return `hexr-${tenant}-${agent}-${role}`.toLowerCase().replace(/_/g, '-').replace(/-{2,}/g, '-').slice(0, 253);
}

/** POSIX shell quoting: bare when only safe characters, single quotes otherwise. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function defaultParentId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/spire/sa/spire-agent`;
}

export function hexrSelectors(r: Registration): string[] {
  return [`hexr:process-role:${r.role}`, `hexr:agent-name:${r.agent}`, `hexr:tenant:${r.tenant}`];
}

export function renderEntries(regs: readonly Registration[], parentId: string | undefined): string {
  const out = [
    '# Generated by `hexr-pid-mapper registrations --format entries`.',
    '# Each entry ANDs the hexr role selectors with k8s:ns and k8s:sa: a marker is',
    '# only a claim, so the role must be scoped to the pods allowed to claim it.',
  ];
  if (parentId === undefined) {
    const tds = [...new Set(regs.map(r => r.trustDomain))];
    out.push(
      '# Parent: the node alias of the SPIRE agents; create it once per trust domain',
      '# (CLUSTER is the k8s_psat cluster name of the agents):',
      ...tds.map(
        td =>
          `#   spire-server entry create -node -spiffeID ${defaultParentId(td)} -selector k8s_psat:cluster:CLUSTER -selector k8s_psat:agent_ns:spire -selector k8s_psat:agent_sa:spire-agent`,
      ),
    );
  }
  for (const r of regs) {
    const args = [
      'spire-server', 'entry', 'create',
      '-parentID', parentId ?? defaultParentId(r.trustDomain),
      '-spiffeID', r.spiffeId,
      '-selector', `k8s:ns:${r.namespace}`,
      '-selector', `k8s:sa:${r.serviceAccount}`,
      ...hexrSelectors(r).flatMap(s => ['-selector', s]),
      '-hint', r.role,
    ];
    out.push('', `# ${r.tenant}/${r.agent} role ${r.role}${r.framework !== undefined ? ` (${r.framework})` : ''}, from ${r.source}`, args.map(shellQuote).join(' '));
  }
  return `${out.join('\n')}\n`;
}

/** JSON strings are valid YAML double-quoted scalars, whatever they contain. */
const q = (s: string): string => JSON.stringify(s);

export function renderClusterSpiffeIds(regs: readonly Registration[], podLabel: { key: string; value: string } | undefined): string {
  const docs = regs.map(r => {
    const label = podLabel ?? { key: 'app.kubernetes.io/name', value: r.agent };
    return [
      `# ${r.tenant}/${r.agent} role ${r.role}${r.framework !== undefined ? ` (${r.framework})` : ''}, from ${r.source}`,
      'apiVersion: spire.spiffe.io/v1alpha1',
      'kind: ClusterSPIFFEID',
      'metadata:',
      `  name: ${q(resourceName(r.tenant, r.agent, r.role))}`,
      '  labels:',
      '    app.kubernetes.io/part-of: hexr',
      'spec:',
      `  spiffeIDTemplate: ${q(r.spiffeId)}`,
      '  namespaceSelector:',
      '    matchLabels:',
      `      kubernetes.io/metadata.name: ${q(r.namespace)}`,
      '  podSelector:',
      '    matchLabels:',
      `      ${q(label.key)}: ${q(label.value)}`,
      '  # Rendered per selected pod: the role selectors ANDed with that pod\'s UID.',
      '  workloadSelectorTemplates:',
      `    - ${q('k8s:pod-uid:{{ .PodMeta.UID }}')}`,
      ...hexrSelectors(r).map(s => `    - ${q(s)}`),
      `  hint: ${q(r.role)}`,
    ].join('\n');
  });
  return `# Generated by \`hexr-pid-mapper registrations --format clusterspiffeid\`.\n${docs.join('\n---\n')}\n`;
}

function parsePodLabel(v: string): { key: string; value: string } | undefined {
  const i = v.indexOf('=');
  if (i <= 0) return undefined;
  const key = v.slice(0, i);
  const value = v.slice(i + 1);
  return LABEL_KEY_RE.test(key) && key.length <= 317 && LABEL_VALUE_RE.test(value) ? { key, value } : undefined;
}

export function registrationsCommand(args: string[], _env: Env): Promise<number> {
  return Promise.resolve(run(args));
}

function run(args: string[]): number {
  const parsed = parseCommand(
    {
      name: 'registrations',
      usage: USAGE,
      options: {
        format: { type: 'string', default: 'entries' },
        'trust-domain': { type: 'string' },
        'parent-id': { type: 'string' },
        namespace: { type: 'string' },
        'service-account': { type: 'string' },
        'pod-label': { type: 'string' },
      },
      allowPositionals: true,
    },
    args,
  );
  if (!parsed.ok) return parsed.exitCode;
  const { values, positionals: files } = parsed;

  const usage: string[] = [];
  const format = values.format;
  if (format !== 'entries' && format !== 'clusterspiffeid') usage.push(`--format must be entries or clusterspiffeid, got "${format}"`);
  const td = values['trust-domain'];
  if (td !== undefined && !TRUST_DOMAIN_RE.test(td)) usage.push(`--trust-domain "${td}" must match ${TRUST_DOMAIN_RE.source}`);
  const parentId = values['parent-id'];
  if (parentId !== undefined) {
    const m = SPIFFE_ID_RE.exec(parentId);
    if (!m || (m[2] as string).split('/').some(seg => seg === '.' || seg === '..')) usage.push(`--parent-id "${parentId}" is not a SPIFFE ID with a path (spiffe://TD/path)`);
    if (format === 'clusterspiffeid') usage.push('--parent-id applies to --format entries only (the controller sets parents itself)');
  }
  const ns = values.namespace;
  if (ns !== undefined && !DNS_LABEL_RE.test(ns)) usage.push(`--namespace "${ns}" is not a valid Kubernetes namespace name`);
  const sa = values['service-account'];
  if (sa !== undefined && (sa.length > 253 || !DNS_SUBDOMAIN_RE.test(sa))) usage.push(`--service-account "${sa}" is not a valid Kubernetes name`);
  let podLabel: { key: string; value: string } | undefined;
  if (values['pod-label'] !== undefined) {
    podLabel = parsePodLabel(values['pod-label']);
    if (podLabel === undefined) usage.push(`--pod-label "${values['pod-label']}" must be KEY=VALUE with a valid label key and value`);
  }
  if (files.length === 0) usage.push('no process-context files given');
  if (usage.length > 0) {
    process.stderr.write(`hexr-pid-mapper registrations: ${usage.join('; ')}\n${USAGE}`);
    return 2;
  }

  const problems: string[] = [];
  const inputs: { source: string; context: ProcessContext }[] = [];
  for (const file of files) {
    let text: string;
    try {
      const fd = fs.openSync(file, 'r');
      try {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) throw new Error('not a regular file');
        if (st.size > MAX_CONTEXT_BYTES) throw new Error(`larger than ${MAX_CONTEXT_BYTES} bytes`);
        text = fs.readFileSync(fd, 'utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      problems.push(`${file}: cannot read: ${e.code ?? e.message}`);
      continue;
    }
    const res = parseProcessContext(text);
    if (res.ok) inputs.push({ source: file, context: res.context });
    else problems.push(...res.problems.map(p => `${file}: ${p}`));
  }
  const opts: RegistrationOptions = { format: format as Format, trustDomain: td, parentId, namespace: ns, serviceAccount: sa, podLabel };
  const built = buildRegistrations(inputs, opts);
  problems.push(...built.problems);
  if (problems.length > 0) {
    process.stderr.write(`hexr-pid-mapper registrations: ${problems.length} problem(s), nothing generated:\n${problems.map(p => `  - ${p}\n`).join('')}`);
    return 2;
  }
  process.stdout.write(format === 'entries' ? renderEntries(built.registrations, parentId) : renderClusterSpiffeIds(built.registrations, podLabel));
  return 0;
}
