// The go-plugin launch contract that needs no gRPC: the environment checks a
// go-plugin server makes before it listens, the socket path and the stdout
// handshake line (spire-plugin-protocol.md 2.1, 2.2). Kept free of heavy
// imports so that a mistaken direct launch fails fast.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { socketPathProblem } from '../socket-path.js';

/** go-plugin's core protocol version (first handshake field). */
export const CORE_PROTOCOL_VERSION = 1;
/** The application protocol version SPIRE's plugins speak (second field). */
export const APP_PROTOCOL_VERSION = 1;

/** Same text a Go plugin prints (hashicorp/go-plugin server.go). */
export const NOT_A_PLUGIN_LAUNCH_MESSAGE =
  'This binary is a plugin. These are not meant to be executed directly.\n' +
  'Please execute the program that consumes these plugins, which will\n' +
  'load any plugins automatically\n';

export type Env = Readonly<Record<string, string | undefined>>;

export type LaunchProblem =
  | { code: 'NOT_A_PLUGIN_LAUNCH'; message: string }
  | { code: 'PROTOCOL_VERSION'; message: string }
  | { code: 'TLS_UNSUPPORTED'; message: string }
  | { code: 'SOCKET_PATH'; message: string };

/** Checks what the host put in our environment; undefined when we may serve. */
export function checkLaunchEnv(env: Env, cookieKey: string, cookieValue: string): LaunchProblem | undefined {
  if (env[cookieKey] !== cookieValue) {
    return { code: 'NOT_A_PLUGIN_LAUNCH', message: NOT_A_PLUGIN_LAUNCH_MESSAGE };
  }
  const offered = env['PLUGIN_PROTOCOL_VERSIONS'];
  if (offered !== undefined && offered !== '') {
    const versions = offered.split(',').map(v => Number.parseInt(v.trim(), 10));
    if (!versions.includes(APP_PROTOCOL_VERSION)) {
      return {
        code: 'PROTOCOL_VERSION',
        message: `incompatible plugin protocol: host offers PLUGIN_PROTOCOL_VERSIONS=${offered}, this plugin speaks ${APP_PROTOCOL_VERSION}`,
      };
    }
  }
  if (env['PLUGIN_CLIENT_CERT']) {
    return {
      code: 'TLS_UNSUPPORTED',
      message: 'PLUGIN_CLIENT_CERT is set (go-plugin AutoMTLS) but this plugin serves plaintext h2c only, as SPIRE requires; disable AutoMTLS in the host',
    };
  }
  return undefined;
}

/** A fresh, short unix socket path in $PLUGIN_UNIX_SOCKET_DIR or the OS temp dir. */
export function makeSocketPath(env: Env, pid: number = process.pid): string {
  const dir = env['PLUGIN_UNIX_SOCKET_DIR'] || tmpdir();
  const path = join(dir, `plugin-${pid}-${randomBytes(4).toString('hex')}.sock`);
  const problem = socketPathProblem(path);
  if (problem !== undefined) throw new Error(`unix socket ${path}: ${problem}; set PLUGIN_UNIX_SOCKET_DIR or TMPDIR to a shorter directory`);
  return path;
}

/** `1|1|unix|<path>|grpc|\n`, exactly what a Go plugin prints. */
export function handshakeLine(socketPath: string): string {
  return `${CORE_PROTOCOL_VERSION}|${APP_PROTOCOL_VERSION}|unix|${socketPath}|grpc|\n`;
}
