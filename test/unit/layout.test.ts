import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EMPTY_DIR, createLayout, isMarkerName } from '../../src/daemon/layout.js';

const UID = '1f2e3d4c-5b6a-4789-9abc-def012345678';
const STATIC_UID = '6e3c1a5d8f7b9e0a2c4d6f8a0b2c4d6e';

describe('isMarkerName', () => {
  it.each(['a.json', 'crew-researcher.json', 'x.y.json'])('accepts %j', n => {
    expect(isMarkerName(n)).toBe(true);
  });

  it.each(['.json', '.hidden.json', 'a.json.tmp', 'a.JSON', 'a.jso', 'json', ''])('rejects %j', n => {
    expect(isMarkerName(n)).toBe(false);
  });
});

describe('createLayout: flat', () => {
  const layout = createLayout({ kind: 'flat', contextRoot: '/tmp/hexr-context/' });
  const dir = layout.dirFor();

  it('watches the one directory, markers directly in it', () => {
    expect(layout.kind).toBe('flat');
    expect(layout.watchRoot).toBe('/tmp/hexr-context');
    expect(layout.markerDepth).toBe(0);
  });

  it('splits the directory into a trusted base and one no-follow component, with a flat scope', () => {
    expect(dir).toEqual({ path: '/tmp/hexr-context', base: '/tmp', components: ['hexr-context'], scope: 'flat:/tmp/hexr-context' });
    expect(dir?.podUid).toBeUndefined();
  });

  it('resolves a relative context root to an absolute one', () => {
    const l = createLayout({ kind: 'flat', contextRoot: 'rel/ctx' });
    expect(l.watchRoot).toBe(`${process.cwd()}/rel/ctx`);
  });

  it('classifies the root itself and a file directly in it', () => {
    expect(layout.classify('/tmp/hexr-context')).toEqual({ dir });
    expect(layout.classify('/tmp/hexr-context/a-r.json')).toEqual({ dir, name: 'a-r.json' });
  });

  it('normalizes a path before classifying it', () => {
    expect(layout.classify('/tmp/hexr-context/sub/../a-r.json')).toEqual({ dir, name: 'a-r.json' });
  });

  it.each(['/tmp/hexr-context/sub/a-r.json', '/tmp/other/a-r.json', '/tmp', '/tmp/hexr-context-2/a.json', '/'])('does not classify %j', p => {
    expect(layout.classify(p)).toBeUndefined();
  });

  it('does not ignore the root or a marker file in it', () => {
    expect(layout.ignore('/tmp/hexr-context', undefined)).toBe(false);
    expect(layout.ignore('/tmp/hexr-context/a-r.json', true)).toBe(false);
    expect(layout.ignore('/tmp/hexr-context/a-r.json', undefined)).toBe(false);
    // Hostile shapes named like markers are not pruned: they must be seen to be rejected.
    expect(layout.ignore('/tmp/hexr-context/a-r.json', false)).toBe(false);
  });

  it.each<[string, boolean | undefined]>([
    ['/tmp/hexr-context/sub', false],
    ['/tmp/hexr-context/sub/a.json', true],
    ['/tmp/hexr-context/.a.json', true],
    ['/tmp/hexr-context/a.json.tmp', true],
    ['/tmp/hexr-context/notes.txt', true],
    ['/tmp/elsewhere/a.json', true],
  ])('ignores %j (isFile %j)', (p, isFile) => {
    expect(layout.ignore(p, isFile)).toBe(true);
  });
});

describe('createLayout: kubelet', () => {
  const layout = createLayout({ kind: 'kubelet', kubeletRoot: '/var/lib/kubelet', volume: 'hexr-context' });
  const pods = '/var/lib/kubelet/pods';
  const ctx = (uid: string): string => `${pods}/${uid}/volumes/${EMPTY_DIR}/hexr-context`;

  it('watches {kubelet_root}/pods, markers four levels below', () => {
    expect(layout.kind).toBe('kubelet');
    expect(layout.watchRoot).toBe(pods);
    expect(layout.markerDepth).toBe(4);
  });

  it('builds the context dir of a pod from its directory name, with the pod as scope', () => {
    expect(layout.dirFor(UID)).toEqual({
      path: ctx(UID),
      base: pods,
      components: [UID, 'volumes', EMPTY_DIR, 'hexr-context'],
      scope: `pod:${UID}`,
      podUid: UID,
    });
  });

  it('accepts a static pod directory (32-hex config hash)', () => {
    expect(layout.dirFor(STATIC_UID)?.podUid).toBe(STATIC_UID);
  });

  it('normalizes the pod uid but keeps the real directory name in the path', () => {
    const upper = UID.toUpperCase();
    const d = layout.dirFor(upper);
    expect(d?.podUid).toBe(UID);
    expect(d?.scope).toBe(`pod:${UID}`);
    expect(d?.components[0]).toBe(upper);
  });

  it.each([undefined, '', 'not-a-uid', '..', `${UID}x`, 'lost+found'])('has no context dir for the pod directory %j', name => {
    expect(layout.dirFor(name)).toBeUndefined();
  });

  it('classifies a context dir and a marker in it', () => {
    const dir = layout.dirFor(UID);
    expect(layout.classify(ctx(UID))).toEqual({ dir });
    expect(layout.classify(`${ctx(UID)}/crew-main.json`)).toEqual({ dir, name: 'crew-main.json' });
  });

  it.each([
    ['the pods dir', pods],
    ['a pod dir', `${pods}/${UID}`],
    ['a volumes dir', `${pods}/${UID}/volumes`],
    ['another volume', `${pods}/${UID}/volumes/${EMPTY_DIR}/other/a.json`],
    ['another volume type', `${pods}/${UID}/volumes/kubernetes.io~configmap/hexr-context/a.json`],
    ['a nested file', `${ctx(UID)}/sub/a.json`],
    ['a bad pod uid', `${pods}/not-a-uid/volumes/${EMPTY_DIR}/hexr-context/a.json`],
    ['a path outside the pods dir', '/var/lib/kubelet/plugins/x/volumes/kubernetes.io~empty-dir/hexr-context/a.json'],
    ['a sibling with the pods prefix', `/var/lib/kubelet/pods2/${UID}/volumes/${EMPTY_DIR}/hexr-context/a.json`],
    ['a traversal out of the pods dir', `${pods}/../pods2/${UID}/volumes/${EMPTY_DIR}/hexr-context/a.json`],
  ])('does not classify %s', (_what, p) => {
    expect(layout.classify(p)).toBeUndefined();
  });

  it.each<[string, string, boolean | undefined]>([
    ['the pods dir', pods, undefined],
    ['a pod dir', `${pods}/${UID}`, false],
    ['a volumes dir', `${pods}/${UID}/volumes`, false],
    ['the empty-dir plugin dir', `${pods}/${UID}/volumes/${EMPTY_DIR}`, undefined],
    ['the context dir', ctx(UID), false],
    ['a marker', `${ctx(UID)}/crew-main.json`, true],
    ['a marker of unknown type', `${ctx(UID)}/crew-main.json`, undefined],
  ])('descends into %s', (_what, p, isFile) => {
    expect(layout.ignore(p, isFile)).toBe(false);
  });

  it.each<[string, string, boolean | undefined]>([
    ['a pod dir with a bad uid', `${pods}/not-a-uid`, false],
    ['the containers dir', `${pods}/${UID}/containers`, false],
    ['the etc-hosts file', `${pods}/${UID}/etc-hosts`, true],
    ['a plugins dir', `${pods}/${UID}/plugins`, false],
    ['a configmap volume', `${pods}/${UID}/volumes/kubernetes.io~configmap`, false],
    ['another emptyDir volume', `${pods}/${UID}/volumes/${EMPTY_DIR}/cache`, false],
    ['a file where the context dir should be', ctx(UID), true],
    ['a subdirectory of the context dir', `${ctx(UID)}/sub`, false],
    ['a file in a subdirectory', `${ctx(UID)}/sub/a.json`, true],
    ['a hidden temp file', `${ctx(UID)}/.crew-main.json.tmp`, true],
    ['a non-json file', `${ctx(UID)}/notes.txt`, true],
    ['a path outside the pods dir', '/var/lib/kubelet/plugins', false],
  ])('prunes %s', (_what, p, isFile) => {
    expect(layout.ignore(p, isFile)).toBe(true);
  });

  it('classifies exactly the paths it does not ignore at marker depth (property)', () => {
    // Each position draws mostly what a marker path has there, so that accepted paths are common.
    const seg = (want: string): fc.Arbitrary<string> =>
      fc.oneof({ arbitrary: fc.constant(want), weight: 4 }, { arbitrary: fc.constantFrom(UID, STATIC_UID, 'volumes', EMPTY_DIR, 'hexr-context', 'a.json', '.a.json', 'x', '..'), weight: 1 }, { arbitrary: fc.stringMatching(/^[a-z.~-]{1,8}$/), weight: 1 });
    const segs5 = fc.tuple(fc.constantFrom(UID, STATIC_UID), seg('volumes'), seg(EMPTY_DIR), seg('hexr-context'), fc.constantFrom('a.json', 'crew-main.json', '.a.json', 'x'));
    let accepted = 0;
    let pruned = 0;
    fc.assert(
      fc.property(segs5, segs => {
        // '.' and '..' make a shorter path once resolved (e.g. the pods dir itself, which is watched).
        fc.pre(!segs.some(x => x === '.' || x === '..'));
        const p = `${pods}/${segs.join('/')}`;
        if (!layout.ignore(p, true)) {
          accepted++;
          const c = layout.classify(p);
          expect(c?.name).toBe(segs[4]);
          expect(c?.dir.podUid).toBeDefined();
        } else {
          pruned++;
        }
      }),
      { numRuns: 500 },
    );
    // The generator reaches both branches, the accepting one above all.
    expect(accepted).toBeGreaterThan(40);
    expect(pruned).toBeGreaterThan(20);
  });
});
