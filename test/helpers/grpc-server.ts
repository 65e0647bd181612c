// Serves ServiceRegistrations on a plain grpc-js server on a temp unix socket,
// for testing the SPIRE services without the go-plugin transport.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceRegistration } from '../../src/goplugin/serve.js';

export interface TestServer {
  target: string;
  close(): Promise<void>;
}

export async function startTestServer(services: ServiceRegistration[]): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'hexr-ts-'));
  const socket = join(dir, 's.sock');
  const server = new grpc.Server();
  for (const s of services) server.addService(s.definition, s.implementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), err => (err ? reject(err) : resolve())),
  );
  return {
    target: `unix:${socket}`,
    close: () => {
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

/** A pino-compatible logger that keeps nothing (tests assert on behaviour, not logs). */
export { createLogger } from '../../src/log.js';
