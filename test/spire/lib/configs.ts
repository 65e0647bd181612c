// The SPIRE configurations the tier runs, taken from the files we ship:
// scripts/spire/{server,agent}.conf (with -expandEnv) and the
// WorkloadAttestor "hexr" block of daemonset/spire-agent-hexr.conf.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { blockBody } from '../../../src/cli/spire-conf.js';
import { REPO } from '../../helpers/build.js';

export const SERVER_CONF = join(REPO, 'scripts', 'spire', 'server.conf');
export const AGENT_CONF = join(REPO, 'scripts', 'spire', 'agent.conf');
export const HEXR_SNIPPET = join(REPO, 'daemonset', 'spire-agent-hexr.conf');

/** The contents of `plugins { ... }` of daemonset/spire-agent-hexr.conf: the WorkloadAttestor "hexr" block as shipped. */
export function shippedHexrBlock(): string {
  const text = fs.readFileSync(HEXR_SNIPPET, 'utf8');
  const m = /^plugins\s*\{/m.exec(text);
  if (!m) throw new Error(`${HEXR_SNIPPET}: no plugins block`);
  const body = blockBody(text, m.index + m[0].length);
  if (body === undefined) throw new Error(`${HEXR_SNIPPET}: unbalanced braces`);
  return body.replace(/^\n+|\s+$/g, ''); // indented as inside plugins { }
}

/** The shipped block with only the deployment-specific daemon_socket (and, for a negative test, the checksum) changed. */
export function hexrBlock(daemonSocket: string, opts: { checksum?: string } = {}): string {
  let block = shippedHexrBlock();
  const sock = /(daemon_socket\s*=\s*)"[^"]*"/;
  if (!sock.test(block)) throw new Error('shipped block has no daemon_socket');
  block = block.replace(sock, `$1${JSON.stringify(daemonSocket)}`);
  if (opts.checksum !== undefined) block = block.replace(/(plugin_checksum\s*=\s*)"[^"]*"/, `$1"${opts.checksum}"`);
  return block;
}

/** scripts/spire/agent.conf with the "# hexr-attestor" line replaced by `block` (or kept: unix attestor only). */
export function agentConfig(block?: string): string {
  const text = fs.readFileSync(AGENT_CONF, 'utf8');
  const lines = text.split('\n');
  const i = lines.findIndex(l => l.trim() === '# hexr-attestor');
  if (i < 0) throw new Error(`${AGENT_CONF}: no "# hexr-attestor" line`);
  if (block === undefined) return text;
  lines.splice(i, 1, block);
  return lines.join('\n');
}

/** The plugin_checksum value of a config text. */
export function checksumOf(conf: string): string {
  const m = /plugin_checksum\s*=\s*"([^"]*)"/.exec(conf);
  if (!m) throw new Error('no plugin_checksum');
  return m[1]!;
}
