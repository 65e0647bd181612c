import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { Writable } from 'node:stream';
import { buildPluginConfig, ConfigStore, configService } from '../../src/plugin/config-service.js';
import { SELECTOR_KINDS } from '../../src/core/selectors.js';
import { createLogger, type LogLevel } from '../../src/log.js';
import { startTestServer, type TestServer } from '../helpers/grpc-server.js';
import { connect, expectGrpcError, unary } from '../helpers/plugin-client.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const core = { trust_domain: 'example.org' };

let server: TestServer;
let clients: ReturnType<typeof connect>;
const store = new ConfigStore();
const levels: LogLevel[] = [];

beforeAll(async () => {
  server = await startTestServer([configService({ store, log: silent, setLogLevel: l => levels.push(l) })]);
  clients = connect(server.target);
});

afterAll(async () => {
  clients.close();
  await server.close();
});

const validate = (hcl: string): Promise<{ valid: boolean; notes: string[] }> =>
  unary(clients.config, 'Validate', { core_configuration: core, hcl_configuration: hcl });
const configure = (hcl: string): Promise<unknown> => unary(clients.config, 'Configure', { core_configuration: core, hcl_configuration: hcl });

describe('buildPluginConfig', () => {
  it('uses the defaults for empty plugin_data', () => {
    const { config, notes } = buildPluginConfig({ core_configuration: core, hcl_configuration: '' });
    expect(notes).toEqual([]);
    expect(config).toMatchObject({
      trustDomain: 'example.org',
      daemonSocket: '/run/hexr/pid-mapper.sock',
      attestTimeoutMs: 1000,
      inFlightWaitMs: 500,
      logLevel: undefined,
    });
    expect([...config!.selectorKinds]).toEqual([...SELECTOR_KINDS]);
  });

  it.each([
    ['HCL printed from an HCL agent config', 'daemon_socket = "/tmp/d.sock"\n\nattest_timeout = "2s"\n\nin_flight_wait = "250ms"\n\nselectors = ["process-role", "tenant"]\n\nlog_level = "debug"'],
    ['HCL printed from a JSON agent config (quoted keys)', '"daemon_socket" = "/tmp/d.sock"\n\n"attest_timeout" = 2000\n\n"in_flight_wait" = 250\n\n"selectors" = ["process-role", "tenant"]\n\n"log_level" = "DEBUG"'],
    ['plugin_data_file content in JSON', '{"daemon_socket":"/tmp/d.sock","attest_timeout":"2s","in_flight_wait":"250ms","selectors":["process-role","tenant"],"log_level":"debug"}'],
  ])('reads every option from %s', (_name, hcl) => {
    const { config, notes } = buildPluginConfig({ hcl_configuration: hcl });
    expect(notes).toEqual([]);
    expect(config).toMatchObject({ daemonSocket: '/tmp/d.sock', attestTimeoutMs: 2000, inFlightWaitMs: 250, logLevel: 'debug' });
    expect([...config!.selectorKinds]).toEqual(['process-role', 'tenant']);
  });

  it('caps the default in_flight_wait below a short attest_timeout', () => {
    expect(buildPluginConfig({ hcl_configuration: 'attest_timeout = "300ms"' }).config?.inFlightWaitMs).toBe(150);
  });

  it('returns a frozen config', () => {
    const { config } = buildPluginConfig({ hcl_configuration: '' });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('lists every problem at once', () => {
    const { config, notes } = buildPluginConfig({
      hcl_configuration:
        'daemon_socket = "relative.sock"\nattest_timeout = "forever"\nin_flight_wait = true\nselectors = ["tenant", "shoe-size", 3]\nlog_level = "loud"\ncolour = "blue"',
    });
    expect(config).toBeUndefined();
    expect(notes).toEqual(
      expect.arrayContaining([
        'unknown option "colour"',
        'daemon_socket must be an absolute path to a unix socket',
        expect.stringContaining('attest_timeout must be a duration'),
        expect.stringContaining('in_flight_wait must be a duration'),
        expect.stringContaining('selectors: unknown kind "shoe-size"'),
        expect.stringContaining('selectors: unknown kind 3'),
        expect.stringContaining('log_level must be one of'),
      ]),
    );
    expect(notes).toHaveLength(7);
  });

  it.each<[string, string, string]>([
    ['a zero attest_timeout', 'attest_timeout = 0', 'attest_timeout must be > 0 and <= 30s'],
    ['an attest_timeout over 30s', 'attest_timeout = "31s"', 'attest_timeout must be > 0 and <= 30s'],
    ['in_flight_wait not below attest_timeout', 'attest_timeout = "1s"\nin_flight_wait = "1s"', 'in_flight_wait (1000ms) must be shorter than attest_timeout (1000ms)'],
    ['an empty selectors list', 'selectors = []', 'selectors must name at least one kind'],
    ['selectors given as a string', 'selectors = "tenant"', 'selectors must be a list'],
    ['plugin_data = "raw string"', '"raw string"', 'plugin_data must be a block of options, got a string'],
    ['text that is not HCL', 'attest_timeout = \n', 'plugin_data is not valid HCL: 2:1:'],
    ['a nested block for a scalar option', 'daemon_socket { path = "/x" }', 'daemon_socket must be an absolute path'],
  ])('rejects %s', (_name, hcl, note) => {
    const { config, notes } = buildPluginConfig({ hcl_configuration: hcl });
    expect(config).toBeUndefined();
    expect(notes.join('\n')).toContain(note);
  });
});

describe('Config service: Validate and Configure agree', () => {
  const cases: [string, string][] = [
    ['empty', ''],
    ['valid', 'daemon_socket = "/tmp/x.sock"\nselectors = ["tenant"]'],
    ['unknown key and bad value', 'colour = "blue"\nattest_timeout = "soon"'],
    ['not HCL', '= = ='],
    ['a raw string', '"raw"'],
  ];
  it.each(cases)('gives the same verdict for %s', async (_name, hcl) => {
    const v = await validate(hcl);
    const local = buildPluginConfig({ hcl_configuration: hcl });
    expect(v.notes).toEqual(local.notes);
    if (v.valid) {
      await expect(configure(hcl)).resolves.toEqual({});
    } else {
      const err = await expectGrpcError(configure(hcl), grpc.status.INVALID_ARGUMENT, 'invalid plugin configuration');
      for (const note of v.notes) expect(err.details).toContain(note);
    }
  });

  it('Configure lists every problem in one INVALID_ARGUMENT', async () => {
    const err = await expectGrpcError(
      configure('colour = "blue"\nselectors = ["nope"]\nlog_level = 3'),
      grpc.status.INVALID_ARGUMENT,
      'unknown option "colour"',
    );
    expect(err.details).toContain('selectors: unknown kind "nope"');
    expect(err.details).toContain('log_level must be one of');
  });

  it('Configure publishes a new frozen config and applies log_level; a rejected Configure keeps the old one', async () => {
    await configure('daemon_socket = "/tmp/a.sock"\nlog_level = "warn"');
    const first = store.current();
    expect(first?.daemonSocket).toBe('/tmp/a.sock');
    expect(levels.at(-1)).toBe('warn');
    await expectGrpcError(configure('daemon_socket = 7'), grpc.status.INVALID_ARGUMENT, 'daemon_socket');
    expect(store.current()).toBe(first);
    await configure('daemon_socket = "/tmp/b.sock"');
    expect(store.current()?.daemonSocket).toBe('/tmp/b.sock');
    expect(first?.daemonSocket).toBe('/tmp/a.sock');
  });
});
