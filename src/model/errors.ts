/**
 * Typed errors of the model loaders.
 *
 * Interim home: once `src/runtime/errors.ts` (KvlabError with a `code`) lands, these two classes
 * fold into it; their `code` strings stay the same so callers can already switch on them.
 */

/**
 * A model, weights or tokenizer file that cannot be read as what it claims to be: truncated, bad
 * magic, unsupported version or tensor type, a missing or wrongly shaped tensor, an unknown
 * architecture, an invalid config. The message always starts with the file's path.
 */
export class ModelFormatError extends Error {
  readonly code = 'KVLAB_MODEL_FORMAT';
  /** The file (or other source label) that was being read. */
  readonly path: string;
  /** The problem, without the path. */
  readonly problem: string;

  constructor(path: string, problem: string, options?: { cause?: unknown }) {
    super(`${path}: ${problem}`, options);
    this.name = 'ModelFormatError';
    this.path = path;
    this.problem = problem;
  }
}

/** A `ModelConfig` field that is missing or out of range; `field` names it (e.g. `nKvHeads`). */
export class ModelConfigError extends Error {
  readonly code = 'KVLAB_MODEL_CONFIG';
  readonly field: string;

  constructor(field: string, problem: string) {
    super(`config.${field}: ${problem}`);
    this.name = 'ModelConfigError';
    this.field = field;
  }
}
