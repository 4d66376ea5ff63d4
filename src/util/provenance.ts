/** Where a stage's result comes from: written by the runtime, shown by the report. */
export interface Provenance {
  pipelineFile: string;
  /** sha256 of the pipeline file's bytes (and of the files it extends). */
  pipelineDigest: string;
  /** This instance's cache key. */
  key: string;
  /** Every transitive upstream instance, in topological order. */
  upstream: Array<{ instance: string; uses: string; version: string; key: string }>;
}
