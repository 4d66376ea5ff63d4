/**
 * `pipeline` command line: argument parsing only. Every verb is implemented in
 * src/runtime/commands.ts, imported lazily so that `--help` and `exec` stay fast.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isSystemError } from './runtime/errors.js';
import { didYouMean } from './runtime/suggest.js';

const VERBS: Record<string, { usage: string; help: string; flags: Record<string, 'bool' | 'value' | 'list'> }> = {
  run: {
    usage:
      'pipeline run FILE [TARGET...] [--set k=v]... [--jobs N] [--force STAGE]... [--dry-run] [--verify] ' +
      '[--resources gpu=N,...] [--artifacts DIR] [--progress tty|plain] [--executor local|slurm] ' +
      '[--profile FILE]',
    help: `Runs the pipeline (or only the TARGET stages/instances and what they need), reusing cached results.
  --set k=v          override a pipeline param (typed by its declared default); repeatable
  --jobs N           at most N stages at once (default: number of CPUs; slurm: the profile's max_jobs)
  --force STAGE      re-run STAGE (a stage id or instance name) even if cached; repeatable
  --dry-run          print what would run and why; run nothing
  --verify           re-hash every reused cache file (default: size+mtime check)
  --resources SPEC   machine capacity, e.g. gpu=2,mem=64 (also $PIPELINE_RESOURCES; default gpu:
                     $CUDA_VISIBLE_DEVICES, else nvidia-smi -L, else 0; other resources unlimited)
  --artifacts DIR    cache folder (also $PIPELINE_ARTIFACTS; default: artifacts/ beside the pipelines/
                     folder holding FILE, else beside FILE)
  --progress MODE    tty (live lines) or plain (timestamped lines); default: tty when stderr is a terminal
  --executor NAME    local (default; also $PIPELINE_EXECUTOR) or slurm: heavy stages become batch jobs
  --profile FILE     the Slurm profile: partitions, account, time limits, setup lines (also $PIPELINE_SLURM_PROFILE)`,
    flags: {
      set: 'list',
      jobs: 'value',
      force: 'list',
      'dry-run': 'bool',
      verify: 'bool',
      resources: 'value',
      artifacts: 'value',
      progress: 'value',
      executor: 'value',
      profile: 'value',
    },
  },
  status: {
    usage: 'pipeline status FILE [--json] [--set k=v]... [--verify] [--artifacts DIR] [--profile FILE]',
    help: `Says for each instance whether it is cached, stale (and why), or pending on a stale upstream.
  --json             one JSON object: {pipeline, file, instances: [{name, stage, uses, state, reasons, key}]}
  --set k=v          the params to judge it with, as given to run; repeatable
  --verify           re-hash every cache file (default: size+mtime check)
  --artifacts DIR    cache folder (as for run)
  --profile FILE     the Slurm profile whose query_timeout bounds each squeue/sacct query (as for run)`,
    flags: { json: 'bool', set: 'list', verify: 'bool', artifacts: 'value', profile: 'value' },
  },
  dag: {
    usage: 'pipeline dag FILE [--format text|mermaid|dot] [--set k=v]...',
    help: `Prints the stage graph: each stage with its type, instance count and upstream stages.
  --format FORMAT    text (default; lists a matrix stage's instances), mermaid or dot (Graphviz)
  --set k=v          override a pipeline param (a matrix axis from a param changes the instances)`,
    flags: { format: 'value', set: 'list' },
  },
  validate: {
    usage: 'pipeline validate FILE [--set k=v]...',
    help: `Loads and checks the pipeline (schema, stage params, references, cycles); runs nothing.
  --set k=v          override a pipeline param (checked against its declared default)
Input files must exist (those of stages after an upstream or needs: are checked when the run
reaches them); fields holding references are checked when a run resolves them.`,
    flags: { set: 'list' },
  },
  show: {
    usage: 'pipeline show FILE STAGE [--json] [--set k=v]... [--artifacts DIR] [--profile FILE]',
    help: `Prints the output values and file paths of a computed stage (a matrix stage: keyed by instance).
STAGE is a stage id or an instance name ('small[d_sae=64,lr=1e-4]'). Exit 1 if it is not computed,
with the reasons and the 'pipeline run' that computes it.
  --json             one JSON object {output: value|path} (a matrix stage: keyed by instance name)
  --set k=v          the params of the run that computed it; repeatable
  --artifacts DIR    cache folder (as for run)
  --profile FILE     the Slurm profile whose query_timeout bounds each squeue/sacct query (as for run)`,
    flags: { json: 'bool', set: 'list', artifacts: 'value', profile: 'value' },
  },
  gc: {
    usage: 'pipeline gc [FILE] [--artifacts DIR] [--dry-run]',
    help: `Removes cache entries that no lock file references (pipelines/**/*.lock.json and lock files of
past runs), their work folders and logs; keeps what a live run uses.
  FILE               only says which project's artifacts folder (default: ./artifacts)
  --artifacts DIR    cache folder (as for run)
  --dry-run          print the counts; remove nothing`,
    flags: { artifacts: 'value', 'dry-run': 'bool' },
  },
  stages: {
    usage: 'pipeline stages [TYPE...] [--markdown]',
    help: `Lists the stage types, or describes the given ones: params (type, default, meaning) and outputs,
from their schemas.
  --markdown         all of them as Markdown (docs/stages.md is this output)`,
    flags: { markdown: 'bool' },
  },
  exec: {
    usage: 'pipeline exec SPEC [--result FILE] [--progress-file FILE]',
    help:
      'Internal: runs one stage from a resolved spec file (what the runner starts for heavy stages; ' +
      '--result: where a batch job writes how it ended; --progress-file: where it writes its progress).',
    flags: { result: 'value', 'progress-file': 'value' },
  },
};

const EXIT_CODES =
  `Exit codes: 0 ok; 1 a stage failed (or show: stage not computed; or the system refused, e.g. a full ` +
  `disk); 2 invalid pipeline or usage; 129 hung up (SIGHUP); 130 interrupted (SIGINT); 143 terminated (SIGTERM).`;

function mainHelp(): string {
  return `pipeline: a cached DAG runner for YAML pipelines\n\nUsage:\n${Object.entries(VERBS)
    .filter(([v]) => v !== 'exec')
    .map(([, d]) => `  ${d.usage}`)
    .join(
      '\n',
    )}\n\nFILE may be given as NAME for pipelines/NAME.yaml. \`pipeline VERB --help\` for details.\n${EXIT_CODES}\n`;
}

class UsageError extends Error {}

/** First clause of a description, at most one terminal line. */
function summary(text: string): string {
  const first = text.split(/\.\s/)[0];
  return first.length > 90 ? `${first.slice(0, 87)}...` : first;
}

interface Parsed {
  positionals: string[];
  flags: Map<string, string[]>;
}

function parse(verb: string, argv: string[]): Parsed {
  const spec = VERBS[verb].flags;
  const positionals: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq > 0 ? eq : undefined);
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown option --${name} for '${verb}'`);
    let value = 'true';
    if (kind !== 'bool') {
      if (eq > 0) value = a.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`--${name} needs a value`);
    }
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return { positionals, flags };
}

function one(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  if (v && v.length > 1) throw new UsageError(`--${name} given more than once`);
  return v?.[0];
}

function sets(p: Parsed): Array<[string, string]> {
  return (p.flags.get('set') ?? []).map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set expects key=value, got '${s}'`);
    return [s.slice(0, eq), s.slice(eq + 1)];
  });
}

function positionals(p: Parsed, verb: string, min: number, max: number): string[] {
  if (p.positionals.length < min || p.positionals.length > max) throw new UsageError(`usage: ${VERBS[verb].usage}`);
  return p.positionals;
}

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (!verb || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(mainHelp());
    return 0;
  }
  if (!VERBS[verb])
    throw new UsageError(
      `unknown command '${verb}' (commands: ${Object.keys(VERBS)
        .filter((v) => v !== 'exec')
        .join(', ')})`,
    );
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`Usage: ${VERBS[verb].usage}\n\n${VERBS[verb].help}\n\n${EXIT_CODES}\n`);
    return 0;
  }
  const p = parse(verb, rest);
  if (
    verb === 'run' &&
    !p.flags.has('dry-run') &&
    !p.flags.has('force') &&
    !p.flags.has('verify') &&
    p.positionals.length
  ) {
    // Nothing changed since the last run? Answered without loading the pipeline machinery.
    const { tryNoopRun } = await import('./runtime/noop.js');
    const progress = one(p, 'progress');
    const code = await tryNoopRun({
      file: p.positionals[0],
      targets: p.positionals.slice(1),
      set: sets(p),
      artifacts: one(p, 'artifacts'),
      progress: progress === 'tty' || progress === 'plain' ? progress : undefined,
      codeDir: dirname(fileURLToPath(import.meta.url)),
    });
    if (code !== undefined) return code;
  }
  const stageTypes = async () => (await import('./stages/index.js')).allStageTypes;
  if (verb === 'exec') {
    // A stage's own process, started once per heavy stage: it loads what running one stage needs,
    // not the pipeline machinery (commands.js pulls in the loader, the schema validator, Slurm).
    const [spec] = positionals(p, verb, 1, 1);
    const { execSpec } = await import('./runtime/exec.js');
    const code = await execSpec(spec, await stageTypes(), one(p, 'result'), one(p, 'progress-file'));
    // The result has been delivered; the open IPC channel (or a handle a stage library
    // leaves behind) must not keep the child alive.
    process.exit(code);
  }
  const cmd = await import('./runtime/commands.js');
  switch (verb) {
    case 'run': {
      const [file, ...targets] = positionals(p, verb, 1, Infinity);
      const jobsText = one(p, 'jobs');
      const jobs = jobsText === undefined ? undefined : Number(jobsText);
      if (jobs !== undefined && (!Number.isInteger(jobs) || jobs < 1))
        throw new UsageError(`--jobs expects a positive integer, got '${jobsText}'`);
      const executor = one(p, 'executor') ?? (process.env.PIPELINE_EXECUTOR || 'local');
      if (executor !== 'local' && executor !== 'slurm')
        throw new UsageError(`--executor expects local or slurm, got '${executor}'`);
      const progress = one(p, 'progress');
      if (progress !== undefined && progress !== 'tty' && progress !== 'plain')
        throw new UsageError(`--progress expects tty or plain`);
      return cmd.runCommand({
        file,
        targets,
        set: sets(p),
        jobs,
        force: p.flags.get('force') ?? [],
        dryRun: p.flags.has('dry-run'),
        verify: p.flags.has('verify'),
        resources: one(p, 'resources'),
        artifacts: one(p, 'artifacts'),
        progress,
        executor,
        profile: one(p, 'profile'),
        stageTypes: await stageTypes(),
        cliPath: fileURLToPath(import.meta.url),
      });
    }
    case 'status': {
      const [file] = positionals(p, verb, 1, 1);
      return cmd.statusCommand({
        file,
        set: sets(p),
        json: p.flags.has('json'),
        verify: p.flags.has('verify'),
        artifacts: one(p, 'artifacts'),
        profile: one(p, 'profile'),
        stageTypes: await stageTypes(),
      });
    }
    case 'dag': {
      const [file] = positionals(p, verb, 1, 1);
      const format = one(p, 'format') ?? 'text';
      if (format !== 'text' && format !== 'mermaid' && format !== 'dot')
        throw new UsageError(`--format expects text, mermaid or dot, got '${format}'`);
      return cmd.dagCommand({ file, set: sets(p), format, stageTypes: await stageTypes() });
    }
    case 'validate': {
      const [file] = positionals(p, verb, 1, 1);
      return cmd.validateCommand({ file, set: sets(p), stageTypes: await stageTypes() });
    }
    case 'show': {
      const [file, stage] = positionals(p, verb, 2, 2);
      return cmd.showCommand({
        file,
        stage,
        set: sets(p),
        json: p.flags.has('json'),
        artifacts: one(p, 'artifacts'),
        profile: one(p, 'profile'),
        stageTypes: await stageTypes(),
      });
    }
    case 'gc': {
      const [file] = positionals(p, verb, 0, 1);
      return cmd.gcCommand({ file, artifacts: one(p, 'artifacts'), dryRun: p.flags.has('dry-run') });
    }
    case 'stages': {
      const types = await stageTypes();
      const { describeStageType, describeStageTypes } = await import('./runtime/describe.js');
      const unknown = p.positionals.filter((n) => !types.some((t) => t.name === n));
      if (unknown.length) {
        const known = types.map((t) => t.name).sort();
        throw new UsageError(
          `unknown stage type ${unknown.join(', ')} (known: ${known.join(', ')})` + didYouMean(unknown[0], known),
        );
      }
      if (p.flags.has('markdown')) process.stdout.write(describeStageTypes(types));
      else if (p.positionals.length)
        for (const n of p.positionals) process.stdout.write(describeStageType(types.find((t) => t.name === n)!) + '\n');
      else
        for (const t of [...types].sort((a, b) => a.name.localeCompare(b.name)))
          process.stdout.write(`${t.name.padEnd(24)}${summary(t.description)}\n`);
      return 0;
    }
  }
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = e as Error & { format?: () => string; exitCode?: number };
    if (e instanceof UsageError) {
      process.stderr.write(`pipeline: ${err.message}\n`);
      process.exitCode = 2;
    } else if (typeof err.format === 'function' && err.exitCode !== undefined) {
      process.stderr.write(`${err.format()}\n`);
      process.exitCode = err.exitCode;
    } else if (isSystemError(e)) {
      // The operating system refused (a full disk, a read-only folder): not a bug of ours.
      process.stderr.write(`pipeline: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`pipeline: internal error: ${err.stack ?? String(e)}\n`);
      process.exitCode = 70;
    }
  },
);
