/**
 * kvlab's multi-document QA records (datasets/multidoc-qa): LongBench's schema (input, context,
 * answers, length, dataset, _id) plus the question kind, the passages as a list and the indices of
 * the evidence passages. Read from JSONL; a malformed line is an error naming its line number.
 */
import { readFileSync } from 'node:fs';
import { FormatError } from '../../runtime/errors.js';

export const QA_KINDS = ['single', 'two-hop', 'back-reference'] as const;
export type QaKind = (typeof QA_KINDS)[number];

export interface QaRecord {
  input: string;
  /** The passages joined by newlines (LongBench's context field). */
  context: string;
  answers: string[];
  /** Words in the context. */
  length: number;
  dataset: string;
  _id: string;
  kind: QaKind;
  /** The passages in order. */
  chunks: string[];
  /** Indices into chunks of the passages the answer needs (ascending). */
  evidence: number[];
}

const isStr = (x: unknown): x is string => typeof x === 'string';

/** Checks one parsed record; the message names what is wrong. */
export function checkQaRecord(x: unknown, where: string): QaRecord {
  const r = x as Partial<QaRecord> | null;
  const bad = (what: string) => new FormatError(`${where}: ${what}`);
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw bad('expected a JSON object');
  if (!isStr(r.input) || r.input.length === 0) throw bad('"input" must be a non-empty string');
  if (!Array.isArray(r.answers) || r.answers.length === 0 || !r.answers.every(isStr)) throw bad('"answers" must be a non-empty list of strings');
  if (!Array.isArray(r.chunks) || r.chunks.length === 0 || !r.chunks.every((c) => isStr(c) && c.length > 0 && !c.includes('\n')))
    throw bad('"chunks" must be a non-empty list of non-empty one-line strings');
  if (!isStr(r.context) || r.context !== r.chunks.join('\n')) throw bad('"context" must be the chunks joined by newlines');
  if (!QA_KINDS.includes(r.kind as QaKind)) throw bad(`"kind" must be one of ${QA_KINDS.join(', ')}, got ${JSON.stringify(r.kind)}`);
  if (!Array.isArray(r.evidence) || r.evidence.length === 0 || !r.evidence.every((i) => Number.isInteger(i) && i >= 0 && i < r.chunks!.length))
    throw bad('"evidence" must list chunk indices');
  if (!isStr(r._id) || !isStr(r.dataset) || typeof r.length !== 'number') throw bad('"_id", "dataset" (strings) and "length" (a number) are required');
  return r as QaRecord;
}

/** Records of a JSONL file (blank lines allowed). */
export function readQaSet(path: string): QaRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FormatError(`${path}: ${(e as Error).message}`);
  }
  const out: QaRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let x: unknown;
    try {
      x = JSON.parse(line);
    } catch (e) {
      throw new FormatError(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    out.push(checkQaRecord(x, `${path}:${i + 1}`));
  });
  return out;
}
