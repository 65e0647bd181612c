// A small node:http listener with start()/close(); routes are a pure-ish function.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddr } from './config.js';
import { safeJson } from '../core/escape.js';

export interface HttpReply {
  status: number;
  /** The whole text, or chunks written as they come (with backpressure). */
  body: string | AsyncIterable<string>;
  type?: string;
  /** Extra response headers (e.g. Content-Security-Policy, Location). */
  headers?: Readonly<Record<string, string>>;
}

export type Route = (method: string, url: URL) => HttpReply | Promise<HttpReply>;

/**
 * The debug and metrics listeners answer only requests addressed to an IP
 * literal or "localhost". A web page the operator visits could otherwise read
 * them through DNS rebinding (a name of the attacker's that resolves to
 * 127.0.0.1): its requests carry that name in Host.
 */
export function hostAllowed(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0 without Host: not a browser
  const h = host.replace(/:\d{1,5}$/, '').toLowerCase();
  return h === 'localhost' || /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || /^\[[0-9a-f:.]+\]$/.test(h);
}

const BASE_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' } as const;

export class HttpServer {
  private server: http.Server | undefined;

  constructor(
    private readonly addr: ListenAddr,
    private readonly route: Route,
  ) {}

  /** host:port actually bound (port 0 → the chosen one). */
  get address(): string | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      if (!hostAllowed(req.headers.host)) {
        res.writeHead(403, { 'content-type': 'text/plain', ...BASE_HEADERS });
        res.end('forbidden: address this listener by IP (e.g. 127.0.0.1) or localhost\n');
        return;
      }
      const url = new URL(req.url ?? '/', 'http://local');
      Promise.resolve()
        .then(() => this.route(req.method ?? 'GET', url))
        .then(
          r => {
            res.writeHead(r.status, { 'content-type': r.type ?? 'application/json; charset=utf-8', ...BASE_HEADERS, ...r.headers });
            if (typeof r.body === 'string') res.end(r.body);
            else void stream(res, req.method === 'HEAD' ? undefined : r.body);
          },
          () => {
            res.writeHead(500, { 'content-type': 'text/plain', ...BASE_HEADERS });
            res.end('internal error\n');
          },
        );
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.addr.port, this.addr.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>(resolve => s.close(() => resolve()));
  }
}

/** Writes chunks as the client takes them; stops when the client goes away. */
async function stream(res: http.ServerResponse, body: AsyncIterable<string> | undefined): Promise<void> {
  try {
    if (body) {
      for await (const chunk of body) {
        if (res.destroyed) return;
        if (!res.write(chunk)) await drainedOrClosed(res);
      }
    }
    res.end();
  } catch {
    res.destroy();
  }
}

/** Resolves on 'drain' or 'close', whichever comes first, and leaves no listener behind. */
function drainedOrClosed(res: http.ServerResponse): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export function json(status: number, data: unknown): HttpReply {
  return { status, body: `${safeJson(data, 2)}\n` };
}
