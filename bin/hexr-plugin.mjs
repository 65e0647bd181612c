#!/usr/local/bin/node
// SPIRE `plugin_cmd` for the hexr WorkloadAttestor, installed in the
// spire-agent image as /opt/hexr/bin/hexr-plugin.mjs (see Dockerfile and
// daemonset/spire-agent-hexr.conf).
//
// Why a launcher file rather than `plugin_cmd = "/usr/local/bin/node"`:
// SPIRE's `plugin_checksum` is the sha256 of the plugin_cmd file and nothing
// else (spire-plugin-protocol.md 1.5). Pointing plugin_cmd at node would pin
// the interpreter, not our code; pointing it at dist/main.js would pin a
// dispatcher that any subcommand goes through. This file is small, changes
// only when the launch contract changes, and its checksum can be published
// and checked (test/unit/dockerfile.test.ts keeps the value in
// spire-agent-hexr.conf equal to the sha256 of this file).
//
// What the checksum does NOT cover: the node binary, dist/, node_modules/ and
// proto/. Those are pinned by the image digest the DaemonSet runs; a single
// executable (Node SEA) would be needed to cover everything with one hash.
//
// The interpreter path is absolute on purpose: SPIRE does no $PATH lookup for
// plugin_cmd ("for security reasons"), and `#!/usr/bin/env node` would bring
// one back through the agent's inherited PATH.
import { pluginCommand } from '../dist/cli/plugin.js';

pluginCommand(process.argv.slice(2), process.env).then(
  code => {
    process.exitCode = code;
  },
  err => {
    process.stderr.write(`hexr-pid-mapper plugin: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
