/**
 * The stage types this project ships. The CLI hands this list to the runtime, which
 * knows nothing of SAEs. Each module keeps heavy imports (tfjs, parquet) inside run(),
 * so that loading this list to validate a pipeline stays fast.
 */
import type { StageType } from '../runtime/stage.js';
import report from './report.js';
import estimateNorm from './estimate-norm.js';
import syntheticActivations from './synthetic-activations.js';
import ingest from './ingest.js';
import trainSae from './train-sae.js';
import shell from './shell.js';
import flopBudget from './flop-budget.js';
import fitLawStage from './fit-law.js';
import hfDownload from './hf-download.js';
import lrLaw from './lr-law.js';
import decideStage from './decide.js';
// (stage imports: one line per stage module, above this comment)

export const allStageTypes: StageType<any>[] = [
  report,
  estimateNorm,
  syntheticActivations,
  ingest,
  trainSae,
  shell,
  flopBudget,
  fitLawStage,
  hfDownload,
  lrLaw,
  decideStage,
  // (stage entries: one line per stage type, above this comment)
];
