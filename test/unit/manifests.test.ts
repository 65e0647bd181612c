// Offline validation of daemonset/: every document is typed with
// kubernetes-models (schemas of k8s 1.27, which do not reject unknown fields),
// walked for unknown keys by our own shapes, and checked against the daemon's
// real config loader, debug routes and plugin config builder, so that flags,
// mounts, probes and the SPIRE snippet cannot drift apart.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Pod } from 'kubernetes-models/v1/Pod';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseHcl, type HclObject } from '../../src/core/hcl.js';
import { loadDaemonConfig, type DaemonConfig } from '../../src/daemon/config.js';
import { debugRoutes } from '../../src/daemon/debug-routes.js';
import { buildPluginConfig } from '../../src/plugin/config-service.js';
import type { PidMap } from '../../src/core/pid-map.js';
import { REPO } from '../helpers/build.js';

const DIR = path.join(REPO, 'daemonset');
type Obj = Record<string, any>;

function docs(file: string): Obj[] {
  return YAML.parseAllDocuments(fs.readFileSync(path.join(DIR, file), 'utf8')).map(d => {
    expect(d.errors, file).toEqual([]);
    return d.toJS() as Obj;
  });
}

function one(file: string, kind: string): Obj {
  const found = docs(file).filter(d => d['kind'] === kind);
  expect(found, `${file}: one ${kind}`).toHaveLength(1);
  return found[0] as Obj;
}

// ---------------------------------------------------------------------------
// Strict key walk: the fields we use, and nothing else (catches typos such as
// readOnlyRootFileSystem that the kubernetes-models schemas let through).
type Shape = 'scalar' | 'stringMap' | { readonly list: Shape } | { readonly [key: string]: Shape };
const S = 'scalar';
const listOf = (s: Shape): { list: Shape } => ({ list: s });

const meta = { name: S, namespace: S, labels: 'stringMap', annotations: 'stringMap' } as const;
const labelSelector = { matchLabels: 'stringMap', matchExpressions: listOf({ key: S, operator: S, values: listOf(S) }) } as const;
const seccomp = { type: S, localhostProfile: S } as const;
const probe = {
  httpGet: { host: S, path: S, port: S, scheme: S },
  initialDelaySeconds: S,
  periodSeconds: S,
  timeoutSeconds: S,
  failureThreshold: S,
  successThreshold: S,
} as const;
const container = {
  name: S,
  image: S,
  imagePullPolicy: S,
  command: listOf(S),
  args: listOf(S),
  env: listOf({ name: S, value: S, valueFrom: { fieldRef: { fieldPath: S, apiVersion: S } } }),
  ports: listOf({ name: S, containerPort: S, protocol: S, hostPort: S }),
  livenessProbe: probe,
  readinessProbe: probe,
  resources: { requests: 'stringMap', limits: 'stringMap' },
  securityContext: {
    runAsUser: S,
    runAsGroup: S,
    runAsNonRoot: S,
    privileged: S,
    allowPrivilegeEscalation: S,
    readOnlyRootFilesystem: S,
    seccompProfile: seccomp,
    capabilities: { drop: listOf(S), add: listOf(S) },
  },
  volumeMounts: listOf({ name: S, mountPath: S, readOnly: S, mountPropagation: S }),
} as const;
const podSpec = {
  serviceAccountName: S,
  automountServiceAccountToken: S,
  hostPID: S,
  hostNetwork: S,
  hostIPC: S,
  dnsPolicy: S,
  enableServiceLinks: S,
  terminationGracePeriodSeconds: S,
  securityContext: { runAsUser: S, runAsGroup: S, runAsNonRoot: S, fsGroup: S, seccompProfile: seccomp },
  tolerations: listOf({ key: S, operator: S, value: S, effect: S }),
  containers: listOf(container),
  volumes: listOf({
    name: S,
    hostPath: { path: S, type: S },
    emptyDir: { medium: S, sizeLimit: S },
    csi: { driver: S, readOnly: S, volumeAttributes: 'stringMap' },
  }),
} as const;
const SHAPES: Record<string, Shape> = {
  Namespace: { apiVersion: S, kind: S, metadata: meta },
  ServiceAccount: { apiVersion: S, kind: S, metadata: meta, automountServiceAccountToken: S },
  DaemonSet: {
    apiVersion: S,
    kind: S,
    metadata: meta,
    spec: {
      selector: labelSelector,
      updateStrategy: { type: S, rollingUpdate: { maxUnavailable: S, maxSurge: S } },
      template: { metadata: meta, spec: podSpec },
    },
  },
  Pod: { apiVersion: S, kind: S, metadata: meta, spec: podSpec },
  // spire-controller-manager api/v1alpha1 ClusterSPIFFEIDSpec.
  ClusterSPIFFEID: {
    apiVersion: S,
    kind: S,
    metadata: meta,
    spec: {
      spiffeIDTemplate: S,
      ttl: S,
      jwtTtl: S,
      dnsNameTemplates: listOf(S),
      workloadSelectorTemplates: listOf(S),
      federatesWith: listOf(S),
      namespaceSelector: labelSelector,
      podSelector: labelSelector,
      admin: S,
      downstream: S,
      autoPopulateDNSNames: S,
      className: S,
      fallback: S,
      hint: S,
    },
  },
  Kustomization: { apiVersion: S, kind: S, resources: listOf(S), images: listOf({ name: S, newName: S, newTag: S, digest: S }) },
};

function unknownKeys(value: unknown, shape: Shape, at = ''): string[] {
  if (shape === 'scalar') return value !== null && typeof value === 'object' ? [`${at}: expected a scalar`] : [];
  if (shape === 'stringMap') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return [`${at}: expected a map`];
    return Object.entries(value).filter(([, v]) => typeof v !== 'string').map(([k]) => `${at}.${k}: expected a string`);
  }
  if ('list' in shape && Object.keys(shape).length === 1) {
    if (!Array.isArray(value)) return [`${at}: expected a list`];
    return value.flatMap((v, i) => unknownKeys(v, shape.list, `${at}[${i}]`));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [`${at}: expected an object`];
  const obj = shape as Record<string, Shape>;
  return Object.entries(value as Obj).flatMap(([k, v]) =>
    Object.hasOwn(obj, k) ? unknownKeys(v, obj[k] as Shape, `${at}.${k}`) : [`${at}.${k}: unknown field`],
  );
}

const MODELS: Record<string, (o: Obj) => { validate(): void }> = {
  Namespace: o => new Namespace(o),
  ServiceAccount: o => new ServiceAccount(o),
  DaemonSet: o => new DaemonSet(o),
  Pod: o => new Pod(o),
};

// ---------------------------------------------------------------------------
// Restricted Pod Security Standard (the checks of the `restricted` profile
// that can apply to the fields we use; baseline ones included).
const RESTRICTED_VOLUME_TYPES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];

function restrictedViolations(spec: Obj): string[] {
  const v: string[] = [];
  for (const k of ['hostPID', 'hostNetwork', 'hostIPC']) if (spec[k] === true) v.push(`${k} is true`);
  for (const vol of (spec['volumes'] ?? []) as Obj[]) {
    for (const type of Object.keys(vol).filter(k => k !== 'name')) {
      if (!RESTRICTED_VOLUME_TYPES.includes(type)) v.push(`volume ${vol['name']} is a ${type}`);
    }
  }
  const pod = (spec['securityContext'] ?? {}) as Obj;
  if (pod['runAsUser'] === 0) v.push('pod runAsUser is 0');
  for (const c of (spec['containers'] ?? []) as Obj[]) {
    const sc = (c['securityContext'] ?? {}) as Obj;
    const name = `container ${c['name']}`;
    if (sc['privileged'] === true) v.push(`${name} is privileged`);
    if (sc['allowPrivilegeEscalation'] !== false) v.push(`${name} does not set allowPrivilegeEscalation: false`);
    if ((sc['runAsNonRoot'] ?? pod['runAsNonRoot']) !== true) v.push(`${name} does not run as non-root`);
    if (sc['runAsUser'] === 0) v.push(`${name} runAsUser is 0`);
    const seccompType = ((sc['seccompProfile'] ?? pod['seccompProfile'] ?? {}) as Obj)['type'];
    if (seccompType !== 'RuntimeDefault' && seccompType !== 'Localhost') v.push(`${name} has no RuntimeDefault/Localhost seccomp profile`);
    const caps = (sc['capabilities'] ?? {}) as Obj;
    if (!((caps['drop'] ?? []) as string[]).includes('ALL')) v.push(`${name} does not drop ALL capabilities`);
    for (const a of (caps['add'] ?? []) as string[]) if (a !== 'NET_BIND_SERVICE') v.push(`${name} adds capability ${a}`);
    for (const p of (c['ports'] ?? []) as Obj[]) if (p['hostPort'] !== undefined) v.push(`${name} uses hostPort`);
  }
  return v;
}

// ---------------------------------------------------------------------------
// The DaemonSet and the daemon configuration it results in.
const ds = one('daemonset.yaml', 'DaemonSet');
const dsPod = ds['spec']['template']['spec'] as Obj;
const dsContainer = (dsPod['containers'] as Obj[])[0] as Obj;

/** The env the daemon sees: literal values, and a stand-in for downward-API ones. */
function containerEnv(c: Obj): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of (c['env'] ?? []) as Obj[]) env[e['name'] as string] = e['value'] !== undefined ? String(e['value']) : `from-${e['valueFrom']['fieldRef']['fieldPath']}`;
  return env;
}

function daemonConfig(): DaemonConfig {
  const args = dsContainer['args'] as string[];
  expect(args[0]).toBe('daemon');
  for (const a of args) expect(a, 'no $(VAR) expansion to reason about').not.toContain('$(');
  return loadDaemonConfig(args.slice(1), containerEnv(dsContainer));
}

function kubeletLayout(cfg: DaemonConfig): { kubeletRoot: string; volume: string } {
  if (cfg.layout.kind !== 'kubelet') throw new Error('the DaemonSet must use the kubelet layout');
  return cfg.layout;
}

function mountFor(p: string): { mount: Obj; volume: Obj } {
  const mounts = (dsContainer['volumeMounts'] as Obj[]).filter(m => p === m['mountPath'] || p.startsWith(`${m['mountPath']}/`));
  expect(mounts, `a volumeMount covers ${p}`).toHaveLength(1);
  const mount = mounts[0] as Obj;
  const volume = (dsPod['volumes'] as Obj[]).find(v => v['name'] === mount['name']) as Obj;
  return { mount, volume };
}

function hasCommentAbove(file: string, line: RegExp): boolean {
  const lines = fs.readFileSync(path.join(DIR, file), 'utf8').split('\n');
  const i = lines.findIndex(l => line.test(l));
  return i > 0 && /^\s*#\s*\S/.test(lines[i - 1] as string);
}

function stubDebugSource(ready: boolean): Parameters<typeof debugRoutes>[0] {
  return {
    snapshot: () => ({}) as PidMap,
    markers: () => [],
    ready: () => ready,
    status: () => ({}),
    explain: () => ({}),
  };
}

function spireHexr(): HclObject {
  const doc = parseHcl(fs.readFileSync(path.join(DIR, 'spire-agent-hexr.conf'), 'utf8')) as HclObject;
  return ((doc['plugins'] as HclObject)['WorkloadAttestor'] as HclObject)['hexr'] as HclObject;
}

const YAML_FILES = ['namespace.yaml', 'daemonset.yaml', 'example-agent-pod.yaml', 'registrations/clusterspiffeid.yaml', 'kustomization.yaml'];

describe('daemonset/ manifests: types and fields', () => {
  it.each(YAML_FILES)('%s: every document is a known kind, validates, and uses no unknown field', file => {
    for (const d of docs(file)) {
      const kind = d['kind'] as string;
      expect(Object.keys(SHAPES), `${file}: kind ${kind}`).toContain(kind);
      expect(unknownKeys(d, SHAPES[kind] as Shape), `${file} ${kind}`).toEqual([]);
      const model = MODELS[kind];
      if (model) expect(() => model(d).validate(), `${file} ${kind}`).not.toThrow();
    }
  });

  it('the strict walk reports a misspelt field with its path', () => {
    const bad = structuredClone(ds);
    bad['spec']['template']['spec']['containers'][0]['securityContext']['readOnlyRootFileSystem'] = true;
    expect(unknownKeys(bad, SHAPES['DaemonSet'] as Shape)).toEqual(['.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem: unknown field']);
    expect(() => new DaemonSet({ ...ds, spec: { ...ds['spec'], selector: undefined } } as any).validate()).toThrow(/selector/);
  });

  it('every volumeMount references a defined volume, and every volume is mounted', () => {
    for (const [file, spec] of [
      ['daemonset.yaml', dsPod],
      ['example-agent-pod.yaml', one('example-agent-pod.yaml', 'Pod')['spec']],
    ] as const) {
      const volumes = (spec['volumes'] as Obj[]).map(v => v['name'] as string);
      const mounted = (spec['containers'] as Obj[]).flatMap(c => (c['volumeMounts'] as Obj[]).map(m => m['name'] as string));
      for (const m of mounted) expect(volumes, `${file}: volumeMount ${m}`).toContain(m);
      for (const v of volumes) expect(mounted, `${file}: volume ${v} is used`).toContain(v);
      expect(new Set(volumes).size).toBe(volumes.length);
    }
  });

  it('the namespaces enforce privileged (node agent) and restricted (workloads) Pod Security', () => {
    const ns = one('namespace.yaml', 'Namespace');
    expect(ds['metadata']['namespace']).toBe(ns['metadata']['name']);
    expect(ns['metadata']['labels']['pod-security.kubernetes.io/enforce']).toBe('privileged');
    const acme = one('example-agent-pod.yaml', 'Namespace');
    expect(acme['metadata']['labels']['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });
});

describe('hexr DaemonSet', () => {
  it('runs with hostPID, and says why right above it', () => {
    expect(dsPod['hostPID']).toBe(true);
    expect(hasCommentAbove('daemonset.yaml', /^\s+hostPID: true$/)).toBe(true);
  });

  it('passes args and env that the daemon’s own config loader accepts, with NODE_NAME from the downward API', () => {
    const env = (dsContainer['env'] as Obj[]).find(e => e['name'] === 'NODE_NAME') as Obj;
    expect(env['valueFrom']).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
    const cfg = daemonConfig();
    expect(cfg.nodeName).toBe('from-spec.nodeName');
    expect(cfg.layout.kind).toBe('kubelet');
  });

  it('probes /live and /ready on the debug endpoint’s address, which the daemon really serves', async () => {
    const cfg = daemonConfig();
    expect(cfg.debugAddr).toBeDefined();
    const debug = cfg.debugAddr as { host: string; port: number };
    const loopback = debug.host === '127.0.0.1' || debug.host === '::1' || debug.host === 'localhost';
    const probes = { livenessProbe: '/live', readinessProbe: '/ready' } as const;
    for (const [kind, want] of Object.entries(probes)) {
      const get = (dsContainer[kind] as Obj)['httpGet'] as Obj;
      expect(get['path'], kind).toBe(want);
      expect(get['port'], kind).toBe(debug.port);
      if (loopback) {
        // Kubelet probes come from the node's network namespace: a loopback
        // listener is reachable only with hostNetwork and host: 127.0.0.1.
        expect(dsPod['hostNetwork'], kind).toBe(true);
        expect(get['host'], kind).toBe(debug.host);
      } else expect(['0.0.0.0', '::']).toContain(debug.host);
      const route = debugRoutes(stubDebugSource(true));
      const reply = await route('GET', new URL(`http://${debug.host}:${debug.port}${want}`));
      expect(reply.status, `${want} answers 200`).toBe(200);
    }
    expect((await debugRoutes(stubDebugSource(false))('GET', new URL('http://x/ready'))).status).toBe(503);
  });

  it('exposes metrics on the port the daemon binds, on all interfaces, and nothing else', () => {
    const cfg = daemonConfig();
    const ports = dsContainer['ports'] as Obj[];
    expect(ports).toEqual([{ name: 'metrics', containerPort: cfg.metricsAddr?.port, protocol: 'TCP' }]);
    expect(cfg.metricsAddr?.host).toBe('0.0.0.0');
    expect(cfg.debugAddr?.port).not.toBe(cfg.metricsAddr?.port);
  });

  it('mounts the kubelet pods directory read-only with HostToContainer propagation at the daemon’s kubelet_root', () => {
    const { kubeletRoot } = kubeletLayout(daemonConfig());
    const { mount, volume } = mountFor(path.join(kubeletRoot, 'pods'));
    expect(mount).toMatchObject({ mountPath: path.join(kubeletRoot, 'pods'), readOnly: true, mountPropagation: 'HostToContainer' });
    expect(volume['hostPath']).toEqual({ path: '/var/lib/kubelet/pods', type: 'Directory' });
  });

  it('puts the socket and the state directory in the hostPath /run/hexr shared with the SPIRE agent', () => {
    const cfg = daemonConfig();
    const sock = mountFor(cfg.socketPath);
    const state = mountFor(cfg.stateDir);
    expect(sock.volume['name']).toBe(state.volume['name']);
    expect(sock.volume['hostPath']).toEqual({ path: '/run/hexr', type: 'DirectoryOrCreate' });
    expect(sock.mount['mountPath']).toBe('/run/hexr');
    expect(sock.mount['readOnly']).not.toBe(true);
    // The SPIRE agent mounts the same hostPath at the same path, so the plugin's
    // daemon_socket must be the daemon's socket.
    expect((spireHexr()['plugin_data'] as HclObject)['daemon_socket']).toBe(cfg.socketPath);
  });

  it('has only the two hostPath volumes it needs, and only /run/hexr is writable', () => {
    const hostPaths = (dsPod['volumes'] as Obj[]).filter(v => v['hostPath']).map(v => v['hostPath']['path'] as string);
    expect(hostPaths.sort()).toEqual(['/run/hexr', '/var/lib/kubelet/pods']);
    for (const m of dsContainer['volumeMounts'] as Obj[]) if (m['mountPath'] !== '/run/hexr') expect(m['readOnly'], m['mountPath']).toBe(true);
  });

  it('drops every privilege but SYS_PTRACE and DAC_READ_SEARCH, on a read-only root filesystem with RuntimeDefault seccomp', () => {
    const sc = dsContainer['securityContext'] as Obj;
    expect(sc).toMatchObject({
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsUser: 0,
      seccompProfile: { type: 'RuntimeDefault' },
      capabilities: { drop: ['ALL'] },
    });
    expect([...(sc['capabilities']['add'] as string[])].sort()).toEqual(['DAC_READ_SEARCH', 'SYS_PTRACE']);
    expect(dsPod['securityContext']['seccompProfile']).toEqual({ type: 'RuntimeDefault' });
    expect(dsPod['hostIPC']).not.toBe(true);
    expect(dsPod['automountServiceAccountToken']).toBe(false);
    // Which is why it cannot live in a restricted (or baseline) namespace.
    expect(restrictedViolations(dsPod)).toEqual(expect.arrayContaining(['hostPID is true', 'volume kubelet-pods is a hostPath']));
  });

  it('requests resources and bounds memory', () => {
    const r = dsContainer['resources'] as Obj;
    expect(Object.keys(r['requests']).sort()).toEqual(['cpu', 'memory']);
    expect(r['limits']['memory']).toBeDefined();
  });
});

describe('example agent pod', () => {
  const pod = one('example-agent-pod.yaml', 'Pod');
  const spec = pod['spec'] as Obj;

  it('meets the restricted Pod Security Standard', () => {
    expect(restrictedViolations(spec)).toEqual([]);
    const c = (spec['containers'] as Obj[])[0] as Obj;
    expect(c['securityContext']).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  });

  it('the restricted check flags what restricted forbids', () => {
    const bad = structuredClone(spec);
    bad['volumes'].push({ name: 'host', hostPath: { path: '/' } });
    bad['containers'][0]['securityContext']['capabilities'] = { add: ['SYS_PTRACE'] };
    delete bad['containers'][0]['securityContext']['allowPrivilegeEscalation'];
    bad['hostPID'] = true;
    expect(restrictedViolations(bad).sort()).toEqual(
      [
        'container crew adds capability SYS_PTRACE',
        'container crew does not drop ALL capabilities',
        'container crew does not set allowPrivilegeEscalation: false',
        'hostPID is true',
        'volume host is a hostPath',
      ].sort(),
    );
  });

  it('writes markers into the emptyDir the daemon watches, at the path the daemon checks through /proc/H/root', () => {
    const cfg = daemonConfig();
    const volumeName = kubeletLayout(cfg).volume;
    const volume = (spec['volumes'] as Obj[]).find(v => v['name'] === volumeName) as Obj;
    expect(volume, `an emptyDir named ${volumeName}`).toBeDefined();
    expect(volume['emptyDir']).toBeDefined();
    const mount = ((spec['containers'] as Obj[])[0]!['volumeMounts'] as Obj[]).find(m => m['name'] === volumeName) as Obj;
    expect(mount['mountPath']).toBe(cfg.containerContextDir);
    expect(mount['readOnly']).not.toBe(true);
  });

  it('is selected by the registrations: namespace, service account and pod label', () => {
    const ns = one('example-agent-pod.yaml', 'Namespace')['metadata']['name'];
    const sa = one('example-agent-pod.yaml', 'ServiceAccount');
    expect(pod['metadata']['namespace']).toBe(ns);
    expect(spec['serviceAccountName']).toBe(sa['metadata']['name']);
    for (const id of docs('registrations/clusterspiffeid.yaml')) {
      expect(id['spec']['namespaceSelector']['matchLabels']).toEqual({ 'kubernetes.io/metadata.name': ns });
      for (const [k, v] of Object.entries(id['spec']['podSelector']['matchLabels'] as Obj)) expect(pod['metadata']['labels'][k], k).toBe(v);
    }
    const entries = fs.readFileSync(path.join(DIR, 'registrations', 'entries.sh'), 'utf8');
    for (const line of entries.split('\n').filter(l => l.startsWith('spire-server entry create'))) {
      expect(line).toContain(` -selector k8s:ns:${ns} `);
      expect(line).toContain(` -selector k8s:sa:${sa['metadata']['name']} `);
    }
  });
});

describe('registrations', () => {
  const roles = ['researcher', 'writer', 'editor'];

  it('has one ClusterSPIFFEID per content-crew role, ANDing the role with the pod UID', () => {
    const ids = docs('registrations/clusterspiffeid.yaml');
    expect(ids.map(d => d['apiVersion'])).toEqual(roles.map(() => 'spire.spiffe.io/v1alpha1'));
    expect(ids.map(d => d['spec']['spiffeIDTemplate'])).toEqual(roles.map(r => `spiffe://example.org/agent/acme/content-crew/${r}`));
    for (const [i, id] of ids.entries()) {
      const t = id['spec']['workloadSelectorTemplates'] as string[];
      expect(t).toContain('k8s:pod-uid:{{ .PodMeta.UID }}');
      expect(t).toContain(`hexr:process-role:${roles[i]}`);
      expect(t).toEqual(expect.arrayContaining(['hexr:agent-name:content-crew', 'hexr:tenant:acme']));
    }
  });

  it('has one entry command per role with a workload scope and the hexr role selectors', () => {
    const lines = fs.readFileSync(path.join(DIR, 'registrations', 'entries.sh'), 'utf8').split('\n').filter(l => l.startsWith('spire-server entry create'));
    expect(lines).toHaveLength(3);
    for (const [i, l] of lines.entries()) {
      expect(l).toContain(`-spiffeID spiffe://example.org/agent/acme/content-crew/${roles[i]} `);
      expect(l).toMatch(/-parentID spiffe:\/\/example\.org\/\S+/);
      expect(l).toContain(`-selector hexr:process-role:${roles[i]} `);
    }
  });
});

describe('SPIRE agent snippet', () => {
  it('configures WorkloadAttestor "hexr" with an absolute plugin_cmd and a 64-hex plugin_checksum', () => {
    const text = fs.readFileSync(path.join(DIR, 'spire-agent-hexr.conf'), 'utf8');
    expect(text).toMatch(/WorkloadAttestor "hexr" \{/);
    const hexr = spireHexr();
    expect(path.isAbsolute(hexr['plugin_cmd'] as string)).toBe(true);
    expect(hexr['plugin_checksum']).toMatch(/^[0-9a-f]{64}$/);
    expect(text).toMatch(/sha256 of the plugin_cmd file ONLY/);
    expect(Array.isArray(hexr['plugin_args'])).toBe(true);
  });

  it('has plugin_data that the plugin’s own config builder accepts', () => {
    const data = spireHexr()['plugin_data'] as HclObject;
    // As SPIRE re-prints it: one `key = value` per line (JSON literals are HCL literals).
    const hcl = Object.entries(data).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n\n');
    const built = buildPluginConfig({ hcl_configuration: hcl });
    expect(built.notes).toEqual([]);
    expect(built.config).toBeDefined();
  });
});

describe('kustomization', () => {
  const k = one('kustomization.yaml', 'Kustomization');

  it('lists files that exist, covering every manifest, and renames the image the DaemonSet uses', () => {
    for (const r of k['resources'] as string[]) expect(fs.existsSync(path.join(DIR, r)), r).toBe(true);
    expect([...(k['resources'] as string[])].sort()).toEqual(YAML_FILES.filter(f => f !== 'kustomization.yaml').sort());
    const image = dsContainer['image'] as string;
    expect((k['images'] as Obj[]).map(i => i['name'])).toContain(image.split(':')[0]);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  it.skipIf(kubectl.status !== 0)('renders with `kubectl kustomize` (offline)', () => {
    const out = execFileSync('kubectl', ['kustomize', DIR], { encoding: 'utf8', timeout: 30_000 });
    const kinds = YAML.parseAllDocuments(out).map(d => (d.toJS() as Obj)['kind'] as string);
    expect(kinds.sort()).toEqual(['ClusterSPIFFEID', 'ClusterSPIFFEID', 'ClusterSPIFFEID', 'DaemonSet', 'Namespace', 'Namespace', 'Pod', 'ServiceAccount', 'ServiceAccount']);
    expect(out).toContain('image: registry.example.com/hexr/hexr-pid-mapper:0.1.0');
  });
});
