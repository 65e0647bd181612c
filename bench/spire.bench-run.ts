// `npm run bench`, real SPIRE scenario: Workload API FetchX509SVID through a
// real spire-agent 1.13.3 for one workload process in a real pod, attested
//   hexr:      by an agent with WorkloadAttestor "unix" + our "hexr" (the
//              shipped block; the entry ANDs the role selectors with hexr:pod-uid),
//   unix:      by an agent of the same build with WorkloadAttestor "unix"
//              alone (the entry selects unix:uid:0): the baseline,
//   go_noop:   "unix" + an external Go plugin (SPIRE's plugin SDK) answering
//              nothing at once: what any external plugin costs,
//   node_noop: "unix" + bench/noop-plugin.mjs, our go-plugin transport in Node
//              answering nothing at once: what a Node plugin costs,
// same run, same server, same process, rounds interleaved; and marker
// written → first successful SVID fetch for fresh role processes. The load
// generator is test/go hexr-workload (go-spiffe's generated Workload API
// client), run as the role process inside the pod. No timing assertions:
// figures and same-run ratios are printed (and added to bench/results.json).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { REPO, ensureBuilt } from '../test/helpers/build.js';
import { DaemonProcess } from '../test/helpers/daemon.js';
import { TestPod, shq } from '../test/helpers/pod.js';
import { SpireAgent } from '../test/spire/lib/agent.js';
import { ensureSpire, type SpireBins } from '../test/spire/lib/bins.js';
import { hexrBlock } from '../test/spire/lib/configs.js';
import { createEntries, registrationsOutput } from '../test/spire/lib/registrations.js';
import { SpireServer } from '../test/spire/lib/server.js';
import { SPIRE_SKIP } from '../test/spire/lib/tier.js';
import { exitOf, mountAgentSocket } from '../test/spire/lib/workloads.js';
import { eventually } from '../test/helpers/env.js';
import { pct, report, writeResults } from './lib/bench.js';

const ROUND_SECONDS = Number(process.env['HEXR_BENCH_SPIRE_ROUND_SECONDS'] ?? 3);
const ROUNDS = Number(process.env['HEXR_BENCH_SPIRE_ROUNDS'] ?? 5);
const FIRST_SAMPLES = Number(process.env['HEXR_BENCH_SPIRE_FIRST'] ?? 30);
const HEXR_ALIAS = 'spiffe://example.org/ns/spire/sa/spire-agent';
const UNIX_ID = 'spiffe://example.org/bench/unix-workload';

/** The baseline agents: unix alone, and unix plus a do-nothing external plugin in Go or in Node. */
const BASELINES = ['unix', 'go_noop', 'node_noop'] as const;
type Baseline = (typeof BASELINES)[number];

function baselineAttestors(kind: Baseline, bins: SpireBins): string | undefined {
  if (kind === 'go_noop') {
    const cmd = path.join(bins.dir, 'noop-attestor');
    const sum = createHash('sha256').update(fs.readFileSync(cmd)).digest('hex');
    return `    WorkloadAttestor "noop_go" {\n        plugin_cmd = "${cmd}"\n        plugin_checksum = "${sum}"\n        plugin_data {}\n    }`;
  }
  if (kind === 'node_noop') {
    const script = path.join(REPO, 'bench', 'noop-plugin.mjs');
    return `    WorkloadAttestor "noop_node" {\n        plugin_cmd = "${process.execPath}"\n        plugin_args = ["${script}"]\n        plugin_data {}\n    }`;
  }
  return undefined;
}

if (SPIRE_SKIP) console.log(`[skip] bench (real SPIRE): ${SPIRE_SKIP}`);

describe.skipIf(SPIRE_SKIP)('benchmark: real SPIRE agent, hexr vs unix attestation', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-bench-spire-'));
  const kubelet = path.join(root, 'kubelet');
  let bins: SpireBins;
  let server: SpireServer;
  let daemon: DaemonProcess;
  let hexrAgent: SpireAgent;
  const baselines = new Map<Baseline, SpireAgent>();
  let pod: TestPod;
  let seq = 0;

  /** Runs test/go hexr-workload in the pod as a fresh process; returns its stdout JSON lines. */
  async function workload(args: string[], label: string): Promise<Record<string, any>[]> {
    const out = path.join(root, `${label}.out`);
    const go = path.join(root, `${label}.go`);
    const p = await pod.exec(`exec ${shq(bins.workload)} ${[...args, '-wait-for', go].map(shq).join(' ')} > ${shq(out)} 2> ${shq(`${out}.err`)}`);
    fs.writeFileSync(go, ''); // pod.exec has seen the process: now it may write its marker and run
    const code = await exitOf(p, (ROUNDS * ROUND_SECONDS * 2 * (BASELINES.length + 1) + 120) * 1000);
    const text = fs.readFileSync(out, 'utf8');
    if (code !== 0) throw new Error(`hexr-workload ${args[0]} exited ${code}: ${text}${fs.readFileSync(`${out}.err`, 'utf8')}`);
    return text
      .split('\n')
      .filter(Boolean)
      .map(l => JSON.parse(l) as Record<string, any>);
  }

  beforeAll(async () => {
    [bins] = await Promise.all([ensureSpire(), ensureBuilt()]);
    fs.mkdirSync(path.join(kubelet, 'pods'), { recursive: true });
    daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--log-level', 'info'] }, path.join(root, 'daemon'));
    fs.mkdirSync(daemon.workDir);
    server = new SpireServer(bins, root);
    await Promise.all([daemon.start(), server.start()]);
    const quiet = ['-logLevel', 'INFO'];
    hexrAgent = new SpireAgent(bins, server, root, { name: 'agent-hexr', alias: HEXR_ALIAS, attestors: hexrBlock(daemon.socket), runArgs: quiet });
    for (const kind of BASELINES) {
      const attestors = baselineAttestors(kind, bins);
      baselines.set(kind, new SpireAgent(bins, server, root, { name: `agent-${kind}`, alias: `spiffe://example.org/bench/${kind}-agent`, runArgs: quiet, ...(attestors ? { attestors } : {}) }));
    }
    const agents = [hexrAgent, ...baselines.values()];
    for (const a of agents) fs.mkdirSync(a.socketDir, { recursive: true });
    pod = await TestPod.create(kubelet, 'v2-systemd-containerd');
    await mountAgentSocket(pod, hexrAgent.socketDir, BASELINES.map(k => [baselines.get(k)!.socketDir, `/run/spire/sockets-${k}`]));

    // hexr entries from our registrations command: content-crew's researcher plus first-0..N for the first-fetch samples.
    const ctx = path.join(root, 'contexts');
    fs.mkdirSync(ctx);
    const files = [path.join(REPO, 'daemonset', 'registrations', 'contexts', 'content-crew-researcher.json')];
    for (let i = 0; i < FIRST_SAMPLES; i++) {
      const f = path.join(ctx, `first-${i}.json`);
      fs.writeFileSync(f, JSON.stringify({ agent_name: 'content-crew', tenant: 'acme', process_role: `first-${i}`, framework: 'crewai', trust_domain: 'example.org' }));
      files.push(f);
    }
    const hexrEntries = await createEntries(server, await registrationsOutput(files), pod.uid);
    for (const kind of BASELINES) await server.cli(['entry', 'create'], ['-parentID', baselines.get(kind)!.opts.alias, '-spiffeID', UNIX_ID, '-selector', 'unix:uid:0']);
    await Promise.all(agents.map(a => a.start()));
    const ids = (args: string[][]): string[] => args.map(a => a[a.indexOf('-spiffeID') + 1]!);
    await Promise.all([
      hexrAgent.svidsCached(ids(hexrEntries), { msg: 'Creating X509-SVID' }),
      ...[...baselines.values()].map(a => a.svidsCached([UNIX_ID], { msg: 'Creating X509-SVID' })),
    ]);
    report('spire.setup', {
      spire: '1.13.3 (scripts/build-spire.sh)',
      hexr_entries: hexrEntries.length,
      machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? '?'}`,
      node: process.version,
      date: new Date().toISOString().slice(0, 10),
    });
  }, 30 * 60_000);

  afterAll(async () => {
    for (const step of [() => hexrAgent?.stop(), ...[...baselines.values()].map(a => () => a.stop()), () => server?.stop(), () => daemon?.stop(), () => pod?.destroy()]) {
      try {
        await step();
      } catch (err) {
        console.log(`cleanup: ${String(err)}`);
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
    writeResults();
  });

  it('8. FetchX509SVID through the real agent: hexr-attested vs unix-only (and no-op external plugins), same process, same run', async () => {
    const sockets = ['hexr=/run/spire/sockets/agent.sock', ...BASELINES.map(k => `${k}=/run/spire/sockets-${k}/agent.sock`)].join(',');
    for (const concurrency of [1, 8]) {
      const out = await workload(
        ['bench', '-sockets', sockets, '-concurrency', String(concurrency), '-duration', `${ROUND_SECONDS}s`, '-rounds', String(ROUNDS), '-marker-dir', '/tmp/hexr-context', '-role', 'researcher'],
        `bench-c${concurrency}-${++seq}`,
      );
      const by = new Map(out.map(r => [r['label'] as string, r]));
      for (const r of out) {
        report(`8.fetch_x509svid.c${concurrency}.${r['label'] as string}`, {
          calls: r['calls'],
          errors: r['errors'],
          spiffe_ids: r['spiffe_ids'],
          p50_ms: r['p50_ms'],
          p90_ms: r['p90_ms'],
          p99_ms: r['p99_ms'],
          p999_ms: r['p999_ms'],
          throughput_rps: r['throughput_rps'],
        });
      }
      const unix = by.get('unix')!;
      for (const label of ['hexr', 'go_noop', 'node_noop']) {
        const r = by.get(label)!;
        report(`8.fetch_x509svid.c${concurrency}.${label}_vs_unix`, {
          p50_ratio: r['p50_ms'] / unix['p50_ms'],
          p99_ratio: r['p99_ms'] / unix['p99_ms'],
          throughput_ratio: r['throughput_rps'] / unix['throughput_rps'],
          ...(label === 'hexr' ? { target: 'hexr adds <= 20% to p50 and p99 (ratio <= 1.2)' } : {}),
        });
      }
      const node = by.get('node_noop')!;
      report(`8.fetch_x509svid.c${concurrency}.hexr_vs_node_noop`, {
        p50_ratio: by.get('hexr')!['p50_ms'] / node['p50_ms'],
        p99_ratio: by.get('hexr')!['p99_ms'] / node['p99_ms'],
        throughput_ratio: by.get('hexr')!['throughput_rps'] / node['throughput_rps'],
      });
      // The next level runs as a fresh process: this one has exited; its mapping goes.
      await eventually(async () => !(await daemon.pidmap()).some(e => e.process_role === 'researcher'), 10_000, 'researcher evicted');
    }
  });

  it('9. marker written → first successful SVID fetch, fresh role processes', async () => {
    const ms: number[] = [];
    const attempts: number[] = [];
    for (let i = 0; i < FIRST_SAMPLES; i++) {
      const [r] = await workload(
        ['first', '-socket', '/run/spire/sockets/agent.sock', '-marker-dir', '/tmp/hexr-context', '-role', `first-${i}`, '-want', `spiffe://example.org/agent/acme/content-crew/first-${i}`],
        `first-${i}-${++seq}`,
      );
      ms.push(r!['ms'] as number);
      attempts.push(r!['attempts'] as number);
    }
    report('9.marker_to_first_svid', {
      n: ms.length,
      p50_ms: pct(ms, 0.5),
      p90_ms: pct(ms, 0.9),
      max_ms: pct(ms, 1),
      first_attempt_ok: attempts.filter(a => a === 1).length,
      max_attempts: Math.max(...attempts),
    });
  });
});
