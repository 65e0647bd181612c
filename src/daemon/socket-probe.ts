// Does something accept connections on this unix socket? (A stale socket file
// refuses; a live server accepts.) Bounded, so a wedged peer cannot hang us.
import * as net from 'node:net';

export function socketAccepts(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise(resolve => {
    const s = net.connect(socketPath);
    s.setTimeout(timeoutMs);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}
