// Where markers live. Two layouts:
//   flat:    one directory (e.g. /tmp/hexr-context), no pod scope.
//   kubelet: {kubelet_root}/pods/{uid}/volumes/kubernetes.io~empty-dir/{volume}/,
//            pod UID taken from the path (kubelet controls it, the pod does not).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ALL_SCOPES } from '../core/in-flight.js';
import { normalizePodUid } from '../core/procparse.js';

export const EMPTY_DIR = 'kubernetes.io~empty-dir';

export interface ContextDir {
  /** Absolute path of the directory, as the daemon sees it. */
  readonly path: string;
  /** Trusted prefix, followed normally. */
  readonly base: string;
  /** Components below `base`, each opened without following symlinks. */
  readonly components: readonly string[];
  /** Scope of exclusive roles: one pod, or the flat directory. */
  readonly scope: string;
  /** Pod UID from the path (kubelet layout only). */
  readonly podUid?: string;
}

export type LayoutConfig =
  | { readonly kind: 'flat'; readonly contextRoot: string }
  | { readonly kind: 'kubelet'; readonly kubeletRoot: string; readonly volume: string };

export interface Layout {
  readonly kind: LayoutConfig['kind'];
  /** The directory the watcher watches. */
  readonly watchRoot: string;
  /** How many directory levels below watchRoot markers sit (0 for flat). */
  readonly markerDepth: number;
  /** The context dir for a pod directory name (kubelet) or the one flat dir. */
  dirFor(podDirName?: string): ContextDir | undefined;
  /**
   * Context dirs as of now: the flat dir, or one per pod directory listed
   * under the watch root (whether each exists is for the caller to check).
   */
  contextDirs(): ContextDir[];
  /** Classifies a path seen by the watcher. */
  classify(p: string): { dir: ContextDir; name?: string } | undefined;
  /** Should the watcher skip this path entirely (prune before descending)? */
  ignore(p: string, isFile: boolean | undefined): boolean;
  /** The scope an event for this path may concern: one pod, the flat dir, or "*" (the watch root or above). */
  scopeOf(p: string): string;
  /** Scope of the flat directory ("" in the kubelet layout). */
  readonly flatScope: string;
}

export function isMarkerName(name: string): boolean {
  return name.endsWith('.json') && name.length > 5 && !name.startsWith('.');
}

export function createLayout(cfg: LayoutConfig): Layout {
  if (cfg.kind === 'flat') {
    const root = path.resolve(cfg.contextRoot);
    const dir: ContextDir = {
      path: root,
      base: path.dirname(root),
      components: [path.basename(root)],
      scope: `flat:${root}`,
    };
    return {
      kind: 'flat',
      watchRoot: root,
      markerDepth: 0,
      flatScope: dir.scope,
      scopeOf: () => dir.scope,
      dirFor: () => dir,
      contextDirs: () => [dir],
      classify(p) {
        const abs = path.resolve(p);
        if (abs === root) return { dir };
        if (path.dirname(abs) === root) return { dir, name: path.basename(abs) };
        return undefined;
      },
      ignore(p, _isFile) {
        const abs = path.resolve(p);
        if (abs === root) return false;
        if (path.dirname(abs) !== root) return true;
        // Not pruned by type: a symlink, FIFO or directory named like a marker
        // must raise an event, so that it is rejected (and shown) at once.
        return !isMarkerName(path.basename(abs));
      },
    };
  }
  const pods = path.join(path.resolve(cfg.kubeletRoot), 'pods');
  const want = ['*', 'volumes', EMPTY_DIR, cfg.volume];
  const dirFor = (uidDir?: string): ContextDir | undefined => {
    if (uidDir === undefined) return undefined;
    const podUid = normalizePodUid(uidDir);
    if (podUid === undefined) return undefined;
    return {
      path: path.join(pods, uidDir, 'volumes', EMPTY_DIR, cfg.volume),
      base: pods,
      components: [uidDir, 'volumes', EMPTY_DIR, cfg.volume],
      scope: `pod:${podUid}`,
      podUid,
    };
  };
  const segs = (p: string): string[] | undefined => {
    const rel = path.relative(pods, path.resolve(p));
    if (rel === '') return [];
    if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    return rel.split(path.sep);
  };
  return {
    kind: 'kubelet',
    watchRoot: pods,
    markerDepth: 4,
    flatScope: '',
    scopeOf(p) {
      const s = segs(p);
      const uid = s?.[0] === undefined ? undefined : normalizePodUid(s[0]);
      return uid === undefined ? ALL_SCOPES : `pod:${uid}`;
    },
    dirFor,
    contextDirs() {
      let names: string[];
      try {
        names = fs.readdirSync(pods);
      } catch {
        return []; // root gone: the watcher waits for it
      }
      const out: ContextDir[] = [];
      for (const n of names) {
        const d = dirFor(n);
        if (d) out.push(d);
      }
      return out;
    },
    classify(p) {
      const s = segs(p);
      if (s === undefined || s.length < 4) return undefined;
      for (let i = 1; i < 4; i++) if (s[i] !== want[i]) return undefined;
      const dir = dirFor(s[0]);
      if (!dir) return undefined;
      if (s.length === 4) return { dir };
      if (s.length === 5) return { dir, name: s[4] as string };
      return undefined;
    },
    ignore(p, isFile) {
      const s = segs(p);
      if (s === undefined) return true;
      if (s.length === 0) return false;
      if (s.length > 5) return true;
      if (normalizePodUid(s[0] as string) === undefined) return true;
      for (let i = 1; i < Math.min(s.length, 4); i++) if (s[i] !== want[i]) return true;
      if (s.length === 5) return !isMarkerName(s[4] as string); // any type: see the flat layout
      return isFile === true;
    },
  };
}
