// grpc-js clients for every service a go-plugin/SPIRE plugin serves, with
// promise helpers. Used by unit tests in place of the SPIRE agent.
import * as grpc from '@grpc/grpc-js';
import { loadProto, lookup } from '../../src/protos.js';

type Ctor = grpc.ServiceClientConstructor;

function ctor(file: string, name: string): Ctor {
  return lookup<Ctor>(loadProto(file), name);
}

export const CTORS = {
  health: () => ctor('grpc/health/v1/health.proto', 'grpc.health.v1.Health'),
  broker: () => ctor('plugin/grpc_broker.proto', 'plugin.GRPCBroker'),
  stdio: () => ctor('plugin/grpc_stdio.proto', 'plugin.GRPCStdio'),
  controller: () => ctor('plugin/grpc_controller.proto', 'plugin.GRPCController'),
  init: () => ctor('spire/service/private/init/v1/init.proto', 'spire.service.private.init.v1.Init'),
  config: () => ctor('spire/service/common/config/v1/config.proto', 'spire.service.common.config.v1.Config'),
  attestor: () => ctor('spire/plugin/agent/workloadattestor/v1/workloadattestor.proto', 'spire.plugin.agent.workloadattestor.v1.WorkloadAttestor'),
};

export type Clients = { [K in keyof typeof CTORS]: grpc.Client & Record<string, any> };

export function connect(target: string): Clients & { close(): void } {
  const out: Partial<Clients> = {};
  // One channel for all: as the go-plugin host does.
  let channel: grpc.Channel | undefined;
  for (const [k, make] of Object.entries(CTORS) as [keyof Clients, () => Ctor][]) {
    const C = make();
    const c = channel
      ? new C(target, grpc.credentials.createInsecure(), { channelOverride: channel })
      : new C(target, grpc.credentials.createInsecure());
    channel ??= c.getChannel() as grpc.Channel;
    out[k] = c as Clients[typeof k];
  }
  return { ...(out as Clients), close: () => channel?.close() };
}

export function unary<T = any>(client: any, method: string, req: unknown, opts: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](req, new grpc.Metadata(), opts, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** Runs `fn`, expects it to reject with a gRPC error of `code` whose details contain `contains`. */
export async function expectGrpcError(p: Promise<unknown>, code: grpc.status, contains: string): Promise<grpc.ServiceError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`expected gRPC ${grpc.status[code]}, got success`);
  const se = err as grpc.ServiceError;
  if (se.code !== code || !String(se.details).includes(contains)) {
    throw new Error(`expected gRPC ${grpc.status[code]} containing "${contains}", got ${grpc.status[se.code]}: ${se.details}`);
  }
  return se;
}
