// One node with real SPIRE: spire-server, our daemon (kubelet layout), test
// pods with the agent's socket mounted in, entries from our `registrations`
// command, and a spire-agent loading the shipped WorkloadAttestor "hexr" block.
// cleanup() stops and removes everything, also after a failed start.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureBuilt, REPO } from '../../helpers/build.js';
import { DaemonProcess } from '../../helpers/daemon.js';
import { TestPod, type CgroupShape } from '../../helpers/pod.js';
import { SpireAgent } from './agent.js';
import { ensureSpire, type SpireBins } from './bins.js';
import { hexrBlock } from './configs.js';
import { createEntries, registrationsOutput } from './registrations.js';
import { SpireServer } from './server.js';
import { mountAgentSocket } from './workloads.js';

/** The process contexts `hexr build` would write for content-crew (researcher, writer, editor). */
export const CONTEXT_FILES = ['researcher', 'writer', 'editor'].map(r => path.join(REPO, 'daemonset', 'registrations', 'contexts', `content-crew-${r}.json`));

/** The node alias every entry of `registrations` is parented to (its default --parent-id). */
export const AGENT_ALIAS = 'spiffe://example.org/ns/spire/sa/spire-agent';

export interface WorldOptions {
  /** Pods to create, by name; entries are created for `entriesFor` only. */
  pods: Record<string, CgroupShape>;
  entriesFor: string[];
  daemonArgs?: string[];
}

export class World {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-spire-'));
  readonly kubelet = path.join(this.root, 'kubelet');
  bins!: SpireBins;
  server!: SpireServer;
  daemon!: DaemonProcess;
  agent!: SpireAgent;
  readonly pods = new Map<string, TestPod>();
  entries: string[][] = [];
  private n = 0;

  static async start(opts: WorldOptions): Promise<World> {
    const w = new World();
    try {
      await w.init(opts);
    } catch (err) {
      await w.cleanup();
      throw err;
    }
    return w;
  }

  private async init(opts: WorldOptions): Promise<void> {
    [this.bins] = await Promise.all([ensureSpire(), ensureBuilt()]);
    fs.mkdirSync(path.join(this.kubelet, 'pods'), { recursive: true });
    this.daemon = new DaemonProcess(
      { layout: 'kubelet', root: this.kubelet, extraArgs: ['--liveness-interval', '200ms', ...(opts.daemonArgs ?? [])] },
      path.join(this.root, 'daemon'),
    );
    fs.mkdirSync(this.daemon.workDir);
    this.server = new SpireServer(this.bins, this.root);
    await Promise.all([this.daemon.start(), this.server.start()]);
    this.agent = new SpireAgent(this.bins, this.server, this.root, { name: 'agent', alias: AGENT_ALIAS, attestors: hexrBlock(this.daemon.socket) });
    fs.mkdirSync(this.agent.socketDir, { recursive: true });
    for (const [name, shape] of Object.entries(opts.pods)) {
      const pod = await TestPod.create(this.kubelet, shape);
      this.pods.set(name, pod);
      await mountAgentSocket(pod, this.agent.socketDir);
    }
    const output = await registrationsOutput(CONTEXT_FILES);
    for (const name of opts.entriesFor) this.entries.push(...(await createEntries(this.server, output, this.pod(name).uid)));
    await this.agent.start();
    const ids = [...new Set(this.entries.map(args => args[args.indexOf('-spiffeID') + 1]!))];
    await this.agent.svidsCached(ids);
  }

  pod(name: string): TestPod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  /** A fresh directory for one workload's output. */
  out(label: string): string {
    const d = path.join(this.root, 'out', `${++this.n}-${label}`);
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  async cleanup(): Promise<void> {
    const steps: (() => Promise<unknown>)[] = [
      () => this.agent?.stop() ?? Promise.resolve(),
      () => this.server?.stop() ?? Promise.resolve(),
      () => this.daemon?.stop() ?? Promise.resolve(),
      ...[...this.pods.values()].map(p => () => p.destroy()),
    ];
    const errors: unknown[] = [];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    fs.rmSync(this.root, { recursive: true, force: true });
    if (errors.length > 0) throw new AggregateError(errors, 'spire world cleanup');
  }
}
