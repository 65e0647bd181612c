// Runs the real daemon (node dist/main.js daemon) as a child process and
// talks to it the way users do: debug endpoint over HTTP, local API over its
// unix socket.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { eventually } from './env.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN = path.join(REPO, 'dist', 'main.js');

export interface PidmapEntry {
  host_pid: number;
  container_pid: number;
  agent_name: string;
  tenant: string;
  process_role: string;
  pod_uid: string | null;
  container_id: string | null;
  start_time: number;
  selectors: string[];
  marker_path: string;
}

export interface MarkerEntry {
  path: string;
  state: 'mapped' | 'pending' | 'conflict' | 'rejected' | 'stale';
  reason: string;
  host_pid: number | null;
}

export interface AttestReply {
  selector_values: string[];
  found: boolean;
  map_version: string;
  /** How long the daemon waited for an in-flight marker (0: at once). */
  waited_ms: number;
}

type AttestClient = grpc.Client & {
  Attest(req: { pid: number; max_wait_ms?: number }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: AttestReply) => void): void;
};

let clientCtor: grpc.ServiceClientConstructor | undefined;
function pidMapperClient(socket: string): AttestClient {
  if (!clientCtor) {
    const def = protoLoader.loadSync('hexr/pidmapper/v1/pidmapper.proto', { keepCase: true, longs: String, defaults: true, includeDirs: [path.join(REPO, 'proto')] });
    const obj = grpc.loadPackageDefinition(def) as any;
    clientCtor = obj.hexr.pidmapper.v1.PidMapper as grpc.ServiceClientConstructor;
  }
  return new clientCtor(`unix:${socket}`, grpc.credentials.createInsecure()) as unknown as AttestClient;
}

export interface DaemonOptions {
  layout: 'flat' | 'kubelet';
  /** kubelet root (kubelet layout) or the context dir (flat layout). */
  root: string;
  stateDir?: string;
  extraArgs?: string[];
}

/** The value of an unlabelled metric in Prometheus text; throws when it is not there. */
export function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} not found`);
  return Number(m[1]);
}

/** Attest calls that reached the daemon: hexr_attest_calls_total summed over its results. */
export function attestCallsTotal(text: string): number {
  return [...text.matchAll(/^hexr_attest_calls_total\{result="\w+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

export class DaemonProcess {
  private child: ChildProcess | undefined;
  readonly stderrLines: string[] = [];
  debugAddr = '';
  readonly socket: string;
  readonly stateDir: string;
  private client: AttestClient | undefined;

  constructor(
    readonly opts: DaemonOptions,
    readonly workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-d-')),
  ) {
    this.socket = path.join(this.workDir, 'api.sock');
    this.stateDir = opts.stateDir ?? path.join(this.workDir, 'state');
  }

  args(): string[] {
    const o = this.opts;
    return [
      '--optimize-for-size', // as the image runs it (Dockerfile ENTRYPOINT)
      // Extra Node flags for profiling a daemon under a test or benchmark, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
      ...(process.env['HEXR_DAEMON_NODE_ARGS']?.split(' ').filter(Boolean) ?? []),
      MAIN,
      'daemon',
      '--layout',
      o.layout,
      o.layout === 'flat' ? '--context-root' : '--kubelet-root',
      o.root,
      '--state-dir',
      this.stateDir,
      '--socket',
      this.socket,
      '--debug-addr',
      '127.0.0.1:0',
      '--metrics-addr',
      'off',
      '--log-level',
      'debug',
      ...(o.extraArgs ?? []),
    ];
  }

  async start(): Promise<void> {
    this.stderrLines.length = 0;
    const child = spawn(process.execPath, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let buf = '';
    child.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.stderrLines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    child.stdout.resume();
    const line = await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${this.stderrLines.join('\n')}`);
        return this.stderrLines.find(l => l.includes('"daemon started"'));
      },
      20_000,
      'daemon start',
    );
    this.debugAddr = (JSON.parse(line) as { debug_addr: string }).debug_addr;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The metrics listener of its latest start ("daemon started"); undefined when off. */
  get metricsAddr(): string | undefined {
    const line = this.stderrLines.findLast(l => l.includes('"daemon started"'));
    const addr = line === undefined ? undefined : (JSON.parse(line) as { metrics_addr?: string }).metrics_addr;
    return addr && addr !== 'off' ? addr : undefined;
  }

  /** Its /metrics text (Prometheus). */
  async metrics(): Promise<string> {
    const addr = this.metricsAddr;
    if (addr === undefined) throw new Error('the daemon serves no metrics (--metrics-addr off)');
    return (await fetch(`http://${addr}/metrics`)).text();
  }

  async get<T>(p: string): Promise<T> {
    const res = await fetch(`http://${this.debugAddr}${p}`);
    if (!res.ok) throw new Error(`GET ${p}: ${res.status}`);
    return (await res.json()) as T;
  }

  async pidmap(): Promise<PidmapEntry[]> {
    return (await this.get<{ entries: PidmapEntry[] }>('/debug/pidmap')).entries;
  }

  async markers(): Promise<MarkerEntry[]> {
    return (await this.get<{ markers: MarkerEntry[] }>('/debug/markers')).markers;
  }

  async marker(file: string): Promise<MarkerEntry | undefined> {
    return (await this.markers()).find(m => m.path === file);
  }

  attest(pid: number, maxWaitMs = 0): Promise<AttestReply> {
    this.client ??= pidMapperClient(this.socket);
    const c = this.client;
    return new Promise((resolve, reject) => {
      c.Attest({ pid, max_wait_ms: maxWaitMs }, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  /** SIGTERM and wait for a clean exit; returns the exit code. */
  async stop(): Promise<number | null> {
    this.client?.close();
    this.client = undefined;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const done = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)));
    child.kill('SIGTERM');
    return done;
  }

  async kill9(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise<void>(resolve => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await done;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    fs.rmSync(this.workDir, { recursive: true, force: true });
  }
}
