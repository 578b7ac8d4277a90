/**
 * The versioned codec context sets (datasets/stories260k-codec/CARD.md):
 *   {name, version, contexts: [{id, context: number[], continuation: number[]}],
 *    profileContexts?: [{id, context: number[]}], ...}
 * profileContexts are the sample a per-model codec profile is built from (never the evaluated text).
 */
import { readFileSync } from 'node:fs';
import { FormatError } from '../runtime/errors.js';

export interface CodecContext { id: string; context: number[]; continuation: number[] }
export interface CodecContextSet { name: string; version: number; contexts: CodecContext[]; profileContexts?: { id: string; context: number[] }[] }

const ids = (a: unknown): a is number[] => Array.isArray(a) && a.length > 0 && a.every((t) => Number.isInteger(t) && t >= 0);

/** Validates a parsed codec context set; `source` names it in errors. */
export function checkCodecContextSet(d: unknown, source: string): CodecContextSet {
  const x = d as Partial<CodecContextSet> | null;
  if (typeof x !== 'object' || x === null || typeof x.name !== 'string' || !Number.isInteger(x.version) || !Array.isArray(x.contexts) || x.contexts.length === 0)
    throw new FormatError(`${source}: expected {name, version, contexts: [...]} with at least one context`);
  x.contexts.forEach((c, i) => {
    if (typeof c?.id !== 'string' || !ids(c.context) || !ids(c.continuation) || c.continuation.length < 2)
      throw new FormatError(`${source}: context ${i} needs id, context: number[] and a continuation of >= 2 token ids`);
  });
  if (x.profileContexts !== undefined && !(Array.isArray(x.profileContexts) && x.profileContexts.every((c) => typeof c?.id === 'string' && ids(c.context))))
    throw new FormatError(`${source}: profileContexts must be [{id, context: number[]}]`);
  return x as CodecContextSet;
}

export function readCodecContextSet(path: string): CodecContextSet {
  let d: unknown;
  try {
    d = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`${path}: ${(e as Error).message}`);
  }
  return checkCodecContextSet(d, path);
}
