/**
 * Typed errors of the model loaders, built on kvlab's error classes (src/runtime/errors.ts) so
 * they share its stable codes: a bad file is a `FormatError` ('KVLAB_FORMAT'), a bad config
 * value an `ArgumentError` ('KVLAB_ARG'). These subclasses add the file path or field name.
 */

import { ArgumentError, FormatError } from '../runtime/errors.js';

/**
 * A model, weights or tokenizer file that cannot be read as what it claims to be: truncated, bad
 * magic, unsupported version or tensor type, a missing or wrongly shaped tensor, an unknown
 * architecture, an invalid config. The message starts with the file's path.
 */
export class ModelFormatError extends FormatError {
  /** The file (or other source label) that was being read. */
  readonly path: string;
  /** The problem, without the path. */
  readonly problem: string;

  constructor(path: string, problem: string, options?: { cause?: unknown }) {
    super(`${path}: ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}

/** A `ModelConfig` field that is missing or out of range; `field` names it (e.g. `nKvHeads`). */
export class ModelConfigError extends ArgumentError {
  readonly field: string;

  constructor(field: string, problem: string) {
    super(`config.${field}: ${problem}`);
    this.field = field;
  }
}
