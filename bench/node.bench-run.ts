// `npm run bench`: every scenario of the benchmark issues on a node populated
// for real (≥ 5,000 processes in ≥ 50 PID namespaces, ≥ 1,000 mapped role
// processes), each figure printed with its ratio to a baseline measured in the
// same run. Nothing here asserts a time: the figures are for reading.
// Scenarios live in bench/scenarios/; the node in bench/lib/node.ts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { ensureBuilt } from '../test/helpers/build.js';
import { GO_SKIP, ROOT_SKIP } from '../test/helpers/env.js';
import { report, writeResults } from './lib/bench.js';
import { PODS, populate, teardown, type BenchNode } from './lib/node.js';
import { attestMapped, markerToMapped, memory, pluginStart, processTable } from './scenarios/classic.js';
import { churn, quietMix } from './scenarios/churn.js';
import { isolation } from './scenarios/isolation.js';
import { attestUnknown } from './scenarios/unknown.js';

const skip = ROOT_SKIP ?? GO_SKIP;
if (skip) console.log(`[skip] bench: ${skip}`);

describe.skipIf(skip)('benchmarks', () => {
  let n: BenchNode | undefined;

  beforeAll(async () => {
    await ensureBuilt();
    const p = await populate();
    n = p;
    const status = await p.daemon.get<{ processes: number; mapped: number }>('/debug/status');
    const namespaces = new Set<string>();
    for (const pid of fs.readdirSync('/proc').filter(x => /^\d+$/.test(x))) {
      try {
        namespaces.add(fs.readlinkSync(`/proc/${pid}/ns/pid`));
      } catch {
        /* gone, or not ours to read */
      }
    }
    report('population', {
      processes: status.processes,
      pid_namespaces: namespaces.size,
      mapped: status.mapped,
      pods: PODS,
      setup_s: p.setupS,
      machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? '?'}`,
      node: process.version,
      date: new Date().toISOString().slice(0, 10),
    });
  });

  afterAll(async () => {
    if (n) await teardown(n);
    writeResults();
  });

  const node = (): BenchNode => {
    if (!n) throw new Error('the node was not populated');
    return n;
  };

  it('3. process table: full resync vs C, incremental vs full', () => processTable());
  it('5. plugin start: exec → handshake line', () => pluginStart());
  it('1. Attest for mapped PIDs through the go-plugin host, vs a do-nothing handler of the same transport', () => attestMapped(node()));
  it('1u. Attest for unknown PIDs (pod and host processes without a marker), vs the do-nothing handler', () => attestUnknown(node()));
  it('7q. the quiet mix (mapped and unknown, 1,000 mapped, 32 callers): the baseline of scenario 7', () => quietMix(node()));
  it('2. marker → mapped: single markers and a burst of 1,000', () => markerToMapped(node()));
  it('6. isolation: pod A abuses, pod B is measured', () => isolation(node()));
  it('4. memory: daemon RSS with 11,000 mapped processes', () => memory(node()));
  it('7. scale under churn: 11,000 mapped, ~200 process starts/s, marker churn, 32 callers mixing mapped and unknown', () => churn(node()));
});
