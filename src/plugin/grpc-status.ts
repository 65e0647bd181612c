// The one place internal errors become gRPC statuses (style.md 2.4). Anything
// not recognised becomes INTERNAL with a generic message: grpc-js would
// otherwise send UNKNOWN with the raw message of whatever was thrown.
import { status, type ServiceError } from '@grpc/grpc-js';
import { PluginError } from './errors.js';

export type GrpcStatusError = Partial<ServiceError> & { code: status; details: string };

export function toGrpcError(err: unknown): GrpcStatusError {
  if (!(err instanceof PluginError)) return { code: status.INTERNAL, details: 'internal error' };
  switch (err.code) {
    case 'NOT_CONFIGURED':
      return { code: status.FAILED_PRECONDITION, details: 'not configured' };
    case 'INVALID_CONFIG':
      return { code: status.INVALID_ARGUMENT, details: err.message };
    case 'DAEMON_UNAVAILABLE':
      return { code: status.UNAVAILABLE, details: err.message };
    case 'DAEMON_TIMEOUT':
      return { code: status.DEADLINE_EXCEEDED, details: err.message };
    case 'CANCELLED':
      return { code: status.CANCELLED, details: err.message };
    case 'DAEMON_REJECTED':
      // The daemon's "I know this PID but cannot decide" (e.g. conflicting
      // markers) passes through; any other daemon failure is ours to hide.
      // Never UNIMPLEMENTED: SPIRE >= 1.15.2 would retry via AttestReference.
      if (err.daemonStatus === status.FAILED_PRECONDITION) {
        return { code: status.FAILED_PRECONDITION, details: err.message };
      }
      if (err.daemonStatus === status.UNAVAILABLE || err.daemonStatus === status.RESOURCE_EXHAUSTED) {
        return { code: status.UNAVAILABLE, details: err.message };
      }
      return { code: status.INTERNAL, details: 'pid-mapper daemon failed to answer' };
  }
}
