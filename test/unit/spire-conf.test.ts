import { describe, expect, it } from 'vitest';
import { blockBody, hexrBlockBody, topLevelString } from '../../src/cli/spire-conf.js';

describe('spire-conf: the WorkloadAttestor "hexr" block of a SPIRE agent config', () => {
  const conf = `plugins {
    WorkloadAttestor "unix" { plugin_data {} }
    # WorkloadAttestor "hexr" { plugin_cmd = "/commented/out" }
    WorkloadAttestor "hexr" {
        plugin_cmd = "/usr/local/bin/hexr-pid-mapper" // the launcher
        plugin_args = ["plugin", "}{"]
        plugin_data {
            plugin_cmd = "/nested/not/top"
            daemon_socket = "/run/hexr/api.sock"
        }
    }
}`;

  it('finds the hexr block past a commented-out one, matching nested braces and skipping braces in strings', () => {
    const body = hexrBlockBody(conf);
    expect(body).toBeDefined();
    expect(body).toContain('daemon_socket');
    expect(body!.trimEnd().endsWith('}')).toBe(true); // plugin_data's closing brace, not the block's
    expect(topLevelString(body!, 'plugin_cmd')).toBe('/usr/local/bin/hexr-pid-mapper');
    expect(topLevelString(body!, 'daemon_socket')).toBeUndefined(); // only inside plugin_data
  });

  it('says undefined for no block and for unbalanced braces', () => {
    expect(hexrBlockBody('plugins { WorkloadAttestor "unix" {} }')).toBeUndefined();
    expect(hexrBlockBody('WorkloadAttestor "hexr" { plugin_data { }')).toBeUndefined();
    expect(blockBody('a "}" } b', 0)).toBe('a "}" ');
    expect(blockBody('a # } \n } b', 0)).toBe('a # } \n ');
  });
});
