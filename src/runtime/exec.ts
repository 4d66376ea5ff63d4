/**
 * The child side of a heavy stage: `pipeline exec SPEC` reads the spec, runs the stage, and
 * reports progress and the result to the parent over IPC. stdout/stderr are the log file.
 * Without an IPC channel (e.g. started by hand), the result is printed as the last line of
 * stdout instead; with `--result FILE` (a batch job) it is written to FILE, success or not, and
 * with `--progress-file FILE` the progress goes to FILE (see progress-file.ts).
 */
import { readFileSync } from 'node:fs';
import { stageContext, type ChildMessage, type LaunchSpec } from './launch.js';
import type { StageType } from './stage.js';
import { writeFileAtomic } from '../util/atomic-write.js';

export async function execSpec(
  specFile: string,
  stageTypes: StageType<any>[],
  resultFile?: string,
  progressFile?: string,
): Promise<number> {
  const spec: LaunchSpec = JSON.parse(readFileSync(specFile, 'utf8'));
  const send = (m: ChildMessage) => {
    if (process.send) process.send(m);
    else if (m.type === 'result') console.log(JSON.stringify(m));
    // A batch job's runner reads how the stage ended from this file, not from the scheduler.
    if (resultFile && m.type !== 'progress')
      writeFileAtomic(
        resultFile,
        JSON.stringify(m.type === 'result' ? { ok: true, outputs: m.outputs } : { ok: false, message: m.message }),
      );
  };
  const type = stageTypes.find((t) => t.name === spec.stage);
  if (!type) {
    send({ type: 'error', message: `unknown stage type ${spec.stage}` });
    return 1;
  }
  const controller = new AbortController();
  const stop = () => controller.abort(new Error('interrupted'));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', stop);
  // The runner died (its IPC channel closed): stop rather than compute for nobody. It may
  // have closed while this process was still loading its modules: no event then.
  process.on('disconnect', stop);
  if (process.send && !process.connected) stop();
  let lastProgress = 0;
  // Only a batch job reports to a file; a local child loads none of that (nor its schema validator).
  const progressToFile = progressFile
    ? (await import('./progress-file.js')).progressFileWriter(progressFile)
    : undefined;
  try {
    const outputs = await type.run(
      stageContext(
        spec,
        controller.signal,
        {
          log: (line) => process.stdout.write(line.endsWith('\n') ? line : `${line}\n`),
          progress: (progress) => {
            progressToFile?.report(progress);
            // The parent redraws at most ~10 Hz; don't flood the channel.
            const now = Date.now();
            if (now - lastProgress < 100 && progress.fraction !== 1) return;
            lastProgress = now;
            if (process.send) send({ type: 'progress', progress });
          },
        },
        resultFile === undefined,
      ),
    );
    const result: ChildMessage = { type: 'result', outputs };
    if (resultFile || !process.send) send(result);
    else await new Promise<void>((resolve) => process.send!(result, () => resolve()));
    return 0;
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    process.stderr.write(`${(e as Error).stack ?? message}\n`);
    if (resultFile) send({ type: 'error', message });
    else if (process.send)
      await new Promise<void>((resolve) =>
        process.send!({ type: 'error', message } satisfies ChildMessage, () => resolve()),
      );
    return 1;
  } finally {
    progressToFile?.close();
    // The IPC channel would keep this process alive after the stage is done.
    if (process.connected) process.disconnect();
  }
}
