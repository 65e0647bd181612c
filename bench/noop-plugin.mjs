// Baseline for the Attest benchmark: the same go-plugin transport and SPIRE
// Init/Config services as `hexr-pid-mapper plugin`, with a WorkloadAttestor
// that answers at once without asking the daemon.
import { createLogger } from '../dist/log.js';
import { GoPluginServer } from '../dist/goplugin/serve.js';
import { serviceDefinition } from '../dist/goplugin/internal-services.js';
import * as cfg from '../dist/plugin/config-service.js';
import { initService } from '../dist/plugin/init-service.js';

const log = createLogger({ level: 'warn' });
const store = new cfg.ConfigStore();
const server = new GoPluginServer({
  cookieKey: 'WorkloadAttestor',
  cookieValue: 'WorkloadAttestor',
  env: process.env,
  log,
  services: [
    initService({ log, onDeinit() {} }),
    cfg.configService({ store, log, setLogLevel() {} }),
    {
      definition: serviceDefinition('spire/plugin/agent/workloadattestor/v1/workloadattestor.proto', 'spire.plugin.agent.workloadattestor.v1.WorkloadAttestor'),
      implementation: { Attest: (_call, cb) => cb(null, { selector_values: [] }) },
    },
  ],
});
await server.start();
await server.done;
