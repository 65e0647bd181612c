// One truth for the SPIRE agent configuration: the README's WorkloadAttestor
// "hexr" block says what daemonset/spire-agent-hexr.conf (the shipped file)
// says, and plugin_checksum is the sha256 of the launcher that plugin_cmd names.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHcl, type HclObject } from '../../src/core/hcl.js';
import { REPO } from '../helpers/build.js';

function hexrBlock(text: string): HclObject {
  const doc = parseHcl(text) as HclObject;
  const plugins = (doc['plugins'] as HclObject | undefined) ?? doc;
  return (plugins['WorkloadAttestor'] as HclObject)['hexr'] as HclObject;
}

const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```hcl\n([\s\S]*?)```/g)].map(m => m[1] as string).filter(b => /WorkloadAttestor\s+"hexr"/.test(b));
const shipped = hexrBlock(fs.readFileSync(path.join(REPO, 'daemonset', 'spire-agent-hexr.conf'), 'utf8'));

describe('the README\'s SPIRE agent block', () => {
  it('exists once', () => {
    expect(blocks).toHaveLength(1);
  });

  it('names the same plugin_cmd, plugin_args and plugin_checksum as the shipped configuration', () => {
    const doc = hexrBlock(blocks[0] as string);
    for (const key of ['plugin_cmd', 'plugin_args', 'plugin_checksum']) expect(doc[key], key).toEqual(shipped[key]);
    expect(doc['plugin_cmd']).toBe('/opt/hexr/bin/hexr-plugin.mjs');
    expect(doc['plugin_checksum']).toBe(createHash('sha256').update(fs.readFileSync(path.join(REPO, 'bin', 'hexr-plugin.mjs'))).digest('hex'));
  });

  it('shows plugin_data values that the shipped configuration has too', () => {
    const mine = hexrBlock(blocks[0] as string)['plugin_data'] as HclObject;
    const theirs = shipped['plugin_data'] as HclObject;
    expect(Object.keys(mine).length).toBeGreaterThan(0);
    for (const [k, v] of Object.entries(mine)) expect(v, k).toEqual(theirs[k]);
  });
});
