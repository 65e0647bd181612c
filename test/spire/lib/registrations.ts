// Registration entries for the real server, from the output of our own
// `hexr-pid-mapper registrations --format entries` (src/cli/registrations.ts).
//
// That command scopes every role to k8s:ns + k8s:sa, which come from SPIRE's
// Kubernetes workload attestor. There is no Kubernetes here, so the SPIRE
// agent has no "k8s" attestor and those selectors can never match. The entries
// must still AND the role with a pod-scoped selector (README "Trust model"), so
// we swap the two k8s selectors for hexr:pod-uid:UID, which our plugin emits
// from the process's cgroup (kernel data, never from the marker). Everything
// else (parent ID, SPIFFE ID, the three hexr role selectors, hint) is used as
// the command printed it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MAIN_JS } from '../../helpers/build.js';
import type { SpireServer } from './server.js';

const run = promisify(execFile);

/** POSIX shell words of one line: bare words and '...' quoting (what shellQuote in registrations.ts produces). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'((?:[^']|'\\'')*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) words.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!);
  return words;
}

/** `registrations --format entries` output for these process-context files. */
export async function registrationsOutput(files: string[], extra: string[] = []): Promise<string> {
  const { stdout } = await run(process.execPath, [MAIN_JS, 'registrations', '--format', 'entries', ...extra, ...files]);
  return stdout;
}

/** The `spire-server entry create` commands of that output, k8s:ns/k8s:sa replaced by hexr:pod-uid:podUid. */
export function entryCommands(output: string, podUid: string): string[][] {
  const cmds = output
    .split('\n')
    .filter(l => l.startsWith('spire-server entry create '))
    .map(l => shellWords(l).slice(3));
  if (cmds.length === 0) throw new Error(`no entry commands in:\n${output}`);
  return cmds.map(args => {
    const out: string[] = [];
    let scoped = false;
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      const v = args[i + 1] ?? '';
      if (a === '-selector' && /^k8s:(ns|sa):/.test(v)) {
        if (!scoped) out.push('-selector', `hexr:pod-uid:${podUid}`);
        scoped = true;
        i++;
        continue;
      }
      out.push(a);
    }
    if (!scoped) throw new Error(`entry without a k8s scope to replace: ${args.join(' ')}`);
    return out;
  });
}

/** Creates the entries in the server; returns the arguments used. */
export async function createEntries(server: SpireServer, output: string, podUid: string): Promise<string[][]> {
  const cmds = entryCommands(output, podUid);
  for (const args of cmds) await server.cli(['entry', 'create'], args);
  return cmds;
}
