// Runs a command the way it runs in our `spire-agent` image (Dockerfile), so
// that the WorkloadAttestor "hexr" block of daemonset/spire-agent-hexr.conf is
// used as shipped: plugin_cmd "/opt/hexr/bin/hexr-plugin.mjs", its
// plugin_checksum, and the launcher's absolute interpreter #!/usr/local/bin/node.
//
// The command gets a private mount namespace (nothing changes on the host) in
// which /opt/hexr is this repository (bin/, dist/, node_modules/, proto/: the
// image's /opt/hexr layout) and /usr/local/bin/node is this Node, when the host
// has none there. Directories that do not exist on the host are made on a
// tmpfs that hides the host's /opt (resp. /usr/local/bin) in that namespace only.
import { REPO } from '../../helpers/build.js';
import { shq } from '../../helpers/pod.js';

export const IMAGE_PLUGIN_CMD = '/opt/hexr/bin/hexr-plugin.mjs';

/** argv for spawn(): `cmd` inside the image-like mount namespace. `stage` is an empty directory of ours. */
export function inImageLayout(cmd: string[], stage: string): string[] {
  const script = [
    'set -e',
    // Keep a handle on the repository before /opt may be hidden (it could live under /opt).
    `mount --bind ${shq(REPO)} ${shq(stage)}`,
    `if [ ! -e /usr/local/bin/node ]; then mount -t tmpfs -o mode=0755 hexr-node /usr/local/bin; ln -s ${shq(process.execPath)} /usr/local/bin/node; fi`,
    'if [ ! -d /opt/hexr ]; then mount -t tmpfs -o mode=0755 hexr-opt /opt; mkdir /opt/hexr; fi',
    `mount --bind ${shq(stage)} /opt/hexr`,
    'exec "$@"',
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ...cmd];
}
