// Errors the plugin's services raise. They carry a stable code; only
// grpc-status.ts turns them into gRPC statuses.
export type PluginErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_CONFIG'
  | 'DAEMON_UNAVAILABLE'
  | 'DAEMON_TIMEOUT'
  | 'DAEMON_REJECTED'
  | 'CANCELLED';

export class PluginError extends Error {
  override readonly name = 'PluginError';
  constructor(
    readonly code: PluginErrorCode,
    message: string,
    /** For DAEMON_REJECTED: the gRPC status code the daemon answered with. */
    readonly daemonStatus?: number,
  ) {
    super(message);
  }
}
