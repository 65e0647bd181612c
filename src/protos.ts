// The one place .proto files are loaded, with one options object.
// keepCase: field names stay as in the .proto (selector_values, not selectorValues).
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';

export const PROTO_DIR = fileURLToPath(new URL('../proto/', import.meta.url));

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

const cache = new Map<string, grpc.GrpcObject>();

/** Loads a proto file given relative to proto/ and returns its grpc object tree. */
export function loadProto(relPath: string): grpc.GrpcObject {
  let obj = cache.get(relPath);
  if (!obj) {
    const def = protoLoader.loadSync(relPath, PROTO_LOADER_OPTIONS);
    obj = grpc.loadPackageDefinition(def);
    cache.set(relPath, obj);
  }
  return obj;
}

/** Walks a dotted name (e.g. "hexr.pidmapper.v1.PidMapper") in a loaded object tree. */
export function lookup<T>(root: grpc.GrpcObject, dotted: string): T {
  let cur: unknown = root;
  for (const part of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(part in cur)) {
      throw new Error(`proto symbol not found: ${dotted}`);
    }
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur as T;
}
