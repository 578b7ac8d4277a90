/**
 * The model fingerprint chunk KV carries: KV computed by one model is only meaningful to a model
 * with the same architecture, shapes, RoPE and weights' config. Form (one line, stable):
 *
 *   `<architecture>/L<nLayers>/d<dim>/ff<hiddenDim>/h<nHeads>/kv<nKvHeads>/hd<headDim>/v<vocab>/rope-halves/<hash>`
 *
 * where <hash> is the first 16 hex digits of the SHA-256 of the config serialised with sorted keys
 * (so every config field, incl. rope theta and scaling, counts). "rope-halves" names kvlab's RoPE
 * pairing convention (DESIGN.md: stored K is rotated in halves (i, i + d/2)).
 */
import { createHash } from 'node:crypto';
import type { ModelConfig } from './config.js';

export function modelFingerprint(config: ModelConfig): string {
  const c = config;
  const hash = createHash('sha256').update(canonicalJson(c)).digest('hex').slice(0, 16);
  return `${c.architecture}/L${c.nLayers}/d${c.dim}/ff${c.hiddenDim}/h${c.nHeads}/kv${c.nKvHeads}/hd${c.headDim}/v${c.vocabSize}/rope-halves/${hash}`;
}

/** JSON with object keys sorted at every level, so equal configs hash equally whatever their key order. */
function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}
