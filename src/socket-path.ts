// One limit for unix socket paths, shared by the daemon (its local API), the
// plugin's daemon_socket option and the plugin's own go-plugin listener:
// sun_path is 108 bytes on Linux, including the terminating NUL.
export const MAX_SOCKET_PATH_BYTES = 107;

/** Why `p` cannot be a unix socket path, or undefined. */
export function socketPathProblem(p: string): string | undefined {
  const n = Buffer.byteLength(p);
  return n > MAX_SOCKET_PATH_BYTES ? `path is ${n} bytes, longer than the ${MAX_SOCKET_PATH_BYTES} bytes a unix socket path may have` : undefined;
}
