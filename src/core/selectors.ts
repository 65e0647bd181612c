// The selector vocabulary, produced here and nowhere else. SPIRE prefixes each
// value with the plugin name from the agent config (`hexr:`), so
// `process-role:researcher` becomes the selector `hexr:process-role:researcher`.
//
// | value                                   | from                         | always |
// |-----------------------------------------|------------------------------|--------|
// | process-role:{process_role}             | marker                       | yes    |
// | agent-name:{agent_name}                 | marker                       | yes    |
// | tenant:{tenant}                         | marker                       | yes    |
// | framework:{framework}                   | marker                       | when given |
// | pod-uid:{uid}                           | /proc/PID/cgroup (kernel)    | when in a pod |
// | container-id:{64 hex}                   | /proc/PID/cgroup (kernel)    | when in a container cgroup |
// | spiffe-path:agent/{tenant}/{agent}/{role} | marker                     | yes    |
//
// Marker-derived values can be claimed by any process that can write into a
// context directory; pod-uid and container-id cannot. Registration entries
// must therefore AND a hexr role selector with a pod-scoped selector.

export const SELECTOR_KINDS = [
  'process-role',
  'agent-name',
  'tenant',
  'framework',
  'pod-uid',
  'container-id',
  'spiffe-path',
] as const;
export type SelectorKind = (typeof SELECTOR_KINDS)[number];

export interface SelectorSource {
  readonly agent_name: string;
  readonly tenant: string;
  readonly process_role: string;
  readonly framework?: string | undefined;
  readonly podUid?: string | undefined;
  readonly containerId?: string | undefined;
}

export function spiffePath(s: Pick<SelectorSource, 'tenant' | 'agent_name' | 'process_role'>): string {
  return `agent/${s.tenant}/${s.agent_name}/${s.process_role}`;
}

export function selectorValuesFor(s: SelectorSource): string[] {
  const out = [`process-role:${s.process_role}`, `agent-name:${s.agent_name}`, `tenant:${s.tenant}`];
  if (s.framework !== undefined) out.push(`framework:${s.framework}`);
  if (s.podUid !== undefined) out.push(`pod-uid:${s.podUid}`);
  if (s.containerId !== undefined) out.push(`container-id:${s.containerId}`);
  out.push(`spiffe-path:${spiffePath(s)}`);
  return out;
}
