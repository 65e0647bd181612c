import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { toGrpcError } from '../../src/plugin/grpc-status.js';
import { PluginError } from '../../src/plugin/errors.js';

describe('toGrpcError', () => {
  it.each<[string, unknown, status, string]>([
    ['not configured', new PluginError('NOT_CONFIGURED', 'x'), status.FAILED_PRECONDITION, 'not configured'],
    ['a bad config', new PluginError('INVALID_CONFIG', 'invalid plugin configuration: a; b'), status.INVALID_ARGUMENT, 'a; b'],
    ['a daemon that is down', new PluginError('DAEMON_UNAVAILABLE', 'daemon unavailable at /s'), status.UNAVAILABLE, 'unavailable at /s'],
    ['a daemon that is too slow', new PluginError('DAEMON_TIMEOUT', 'did not answer in time'), status.DEADLINE_EXCEEDED, 'in time'],
    ['a caller that gave up', new PluginError('CANCELLED', 'cancelled'), status.CANCELLED, 'cancelled'],
    ['a daemon conflict', new PluginError('DAEMON_REJECTED', 'conflicting markers', status.FAILED_PRECONDITION), status.FAILED_PRECONDITION, 'conflicting markers'],
    ['a daemon that lacks the method', new PluginError('DAEMON_REJECTED', 'secret detail', status.UNIMPLEMENTED), status.INTERNAL, 'daemon failed to answer'],
    ['a plain Error', new Error('secret /etc/path'), status.INTERNAL, 'internal error'],
    ['a thrown string', 'boom', status.INTERNAL, 'internal error'],
  ])('maps %s', (_name, err, code, contains) => {
    const e = toGrpcError(err);
    expect(e.code).toBe(code);
    expect(e.details).toContain(contains);
    expect(e.details).not.toContain('secret');
  });
});
