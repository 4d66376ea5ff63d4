/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`) into where the time goes:
 * self time grouped by package or project file, and the functions with the most
 * inclusive time. Usable alone: `node dist/bench/runtime/profile.js FILE.cpuprofile`.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  spanMs: number;
  byGroup: Array<[string, number]>;
  topInclusive: Array<[string, number]>;
  /** Inclusive time of the project's own functions (dist/src), the runtime's call tree. */
  projectInclusive: Array<[string, number]>;
}

/** The bucket a frame's self time counts in: a package, a project file, or a V8/Node pseudo-frame. */
export function groupOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pkg) return `pkg ${pkg[1]}`;
  if (url.startsWith('node:internal/modules') || url.startsWith('node:internal/vm')) return 'node module loader';
  if (url.startsWith('node:'))
    return `node ${
      url
        .slice(5)
        .replace(/^internal\//, '')
        .split('/')[0]
    }`;
  const own = url.match(/\/dist\/(.*)$/);
  return own ? own[1] : url;
}

function frameLabel(frame: CallFrame): string {
  const where = frame.url === '' ? '' : ` ${groupOf(frame)}:${frame.lineNumber + 1}`;
  return `${frame.functionName || '(anonymous)'}${where}`;
}

export function summarise(profile: CpuProfile): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, k) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[k] ?? 0)));

  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  // A native frame (readFileSync's binding, compileFunction...) counts for the JS code that called it.
  const selfGroup = (id: number): string => {
    const group = groupOf(byId.get(id)!.callFrame);
    if (group !== '(native)') return group;
    for (let up = parent.get(id); up !== undefined; up = parent.get(up)) {
      const caller = groupOf(byId.get(up)!.callFrame);
      if (!caller.startsWith('(')) return `${caller} (native calls)`;
    }
    return group;
  };
  const byGroup = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const group = selfGroup(id);
    byGroup.set(group, (byGroup.get(group) ?? 0) + us);
  }

  // Inclusive time per function, counted once per call chain even when it recurses.
  const inclusive = new Map<string, number>();
  const walk = (node: ProfileNode, onStack: Set<string>): number => {
    const label = frameLabel(node.callFrame);
    const nested = onStack.has(label);
    if (!nested) onStack.add(label);
    let total = selfUs.get(node.id) ?? 0;
    for (const child of node.children ?? []) total += walk(byId.get(child)!, onStack);
    if (!nested) {
      onStack.delete(label);
      inclusive.set(label, (inclusive.get(label) ?? 0) + total);
    }
    return total;
  };
  walk(profile.nodes[0], new Set());
  inclusive.delete('(root)');

  const ms = (entries: Iterable<[string, number]>) =>
    [...entries].map(([k, us]) => [k, us / 1000] as [string, number]).sort((a, b) => b[1] - a[1]);
  return {
    spanMs: (profile.endTime - profile.startTime) / 1000,
    byGroup: ms(byGroup),
    topInclusive: ms(inclusive).slice(0, 25),
    projectInclusive: ms(inclusive)
      .filter(([label]) => / src\//.test(label))
      .slice(0, 25),
  };
}

export function formatSummary(summary: ProfileSummary, groups = 20): string {
  const row = ([name, ms]: [string, number]) => `  ${ms.toFixed(1).padStart(8)} ms  ${name}`;
  return [
    `profiled span ${summary.spanMs.toFixed(1)} ms (node bootstrap before the profiler starts is not in it)`,
    'self time by package / file:',
    ...summary.byGroup.slice(0, groups).map(row),
    'inclusive time by function:',
    ...summary.topInclusive.map(row),
    'inclusive time by project function (dist/src):',
    ...summary.projectInclusive.map(row),
  ].join('\n');
}

export function summariseFile(file: string): ProfileSummary {
  return summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/runtime/profile.js FILE.cpuprofile');
    process.exit(2);
  }
  console.log(formatSummary(summariseFile(file)));
}
