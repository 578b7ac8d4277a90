/**
 * Token selection policies for the fusor, all through one interface. A policy plans, per layer, which
 * context tokens (chunk tokens, indexed 0..N-1 over the chunks concatenated; the prefix is exact and
 * never counted; the query is always recomputed) have their K/V recomputed.
 *
 * The one rule every plan keeps: the set on layer l+1 is a subset of the set on layer l (layer 0 may
 * pick any subset). A token's hidden state on layer l+1 is the output of layer l, which exists only
 * for tokens recomputed on layer l; a token newly selected later would have no correct hidden state,
 * so the fusor rejects such a plan (InternalError) rather than invent one.
 *
 * Definitions (DESIGN.md): recompute ratio r = the mean share of context tokens recomputed on the
 * layers after the check layer(s) (all layers when there is none); compute fraction = recomputed
 * token-layers / (N x layers), check layers included.
 *
 * Policies:
 * - `full-recompute`: every context token on every layer (= full prefill).
 * - `full-reuse`: none (= the re-positioned chunk KV concatenated, then the query prefilled).
 * - `prefix-caching`: the first chunk's KV kept (prefix + chunk 0 is a true prefix of the sequence,
 *   so it is exact), every later chunk token recomputed on every layer.
 * - `cacheblend`: HKVD with gradual filtering. Layers 0..checkLayer recompute every context token;
 *   the check layer defaults to 1, the first layer whose reused KV can deviate at all: layer 0's K/V
 *   depend only on the token and its position, so reused layer-0 KV is already exact (up to
 *   rounding) and ranking by it would rank noise; layer 0 still runs on every token to give layer 1
 *   its inputs.
 *   on the check layer the KV deviation (K, V or both) ranks the tokens and the r1 > r with the
 *   largest deviation go on; each later layer re-ranks the survivors by the deviation measured on the
 *   layer before and keeps fewer, linearly from r1 down to 2r - r1, so the mean over the layers
 *   after the check layer is r (r1 = 4r/3 by default).
 * - `cacheblend-released`: one check on layer 1 by squared V difference, the same top-r set on every
 *   later layer (the authors' released code; ratio 0.16 by default).
 * - `lmcache-v1`: one check on layer 1 by squared post-RoPE K difference, fixed set after it.
 * - `epic`: the first k tokens of every chunk on every layer, k so that the ratio is r.
 * - `random`: a seeded random r-share of the context tokens on every layer (ablation).
 * - `oracle`: the r-share with the largest true deviation (reused KV vs full prefill's KV) on every
 *   layer. One set for all layers (per-layer sets would need hidden states the method does not
 *   have), ranked by the sum over layers of each layer's deviation divided by that layer's mean, so
 *   every layer weighs alike. A research upper bound: it needs the full prefill it avoids.
 * - `query-attention`: the question is known when the request arrives, so rank the context tokens by
 *   how much the question attends to them: the fusor runs the query rows alone through the first
 *   `attentionLayers` layers on the full-reuse cache and reports each context token's attention mass
 *   per layer (query-attention.ts); the tokens rank by the sum over layers attentionFrom.. of mass /
 *   that layer's mean mass (by default the late layers, defaultQueryLayers), and each, best first,
 *   brings itself and up to `window - 1` tokens before it in its chunk (default 1: growing was
 *   measured worse) until r N tokens are taken; that one set is recomputed on every layer (as
 *   `oracle`). Why late layers: in "Her favourite colour is ivory." the question about a named person
 *   reads "ivory", whose KV is wrong only because the pronoun's referent sits in another chunk; the
 *   word deviates from full prefill only on late layers (5-6 of kvlab-qa's 8), where HKVD's layer-1
 *   check cannot see it and where the question's attention finds it.
 *   Costs Q x attentionLayers query token-layers before the recompute (counted in the compute fraction).
 *
 * Deviation of a token on a layer = sum over kv heads and head_dim of (fresh - reused)^2, of K, V,
 * or of both added ('kv').
 */
import { seededUniform } from '../model/generate.js';
import { ArgumentError } from '../runtime/errors.js';

export type DeviationKind = 'k' | 'v' | 'kv';

export type PolicyName = 'full-recompute' | 'full-reuse' | 'prefix-caching' | 'cacheblend' | 'cacheblend-released'
  | 'lmcache-v1' | 'cacheblend-window' | 'epic' | 'random' | 'oracle' | 'query-attention';

export const POLICY_NAMES: readonly PolicyName[] = ['full-recompute', 'full-reuse', 'prefix-caching', 'cacheblend',
  'cacheblend-released', 'lmcache-v1', 'cacheblend-window', 'epic', 'random', 'oracle', 'query-attention'];

/** What a policy knows about the request when it plans. */
export interface PolicyContext {
  nLayers: number;
  /** Context tokens N (the chunks' tokens). */
  nContext: number;
  /** Index of each chunk's first token in the context, and its length. */
  chunkStarts: readonly number[];
  chunkLengths: readonly number[];
  /** Only for policies with `needsReference`: per layer, each context token's true deviation. */
  trueDeviation?: readonly Float64Array[];
  /**
   * Only for policies with `queryAttentionLayers` [from, to): per layer from..to-1, each context
   * token's attention mass from the query rows run alone on the full-reuse cache (query-attention.ts).
   */
  queryAttention?: readonly Float64Array[];
}

export interface SelectionPlan {
  /** Layers whose deviation is measured to select (ratio r counts the layers after the last one). */
  readonly checkLayers: readonly number[];
  /** The deviation the fusor measures on layer l's recomputed tokens, or null for none. */
  measureAt(l: number): DeviationKind | null;
  /**
   * The context tokens (ascending indices) to recompute on layer l, a subset of `prev` (the layer
   * before's set; every context token for l = 0). `prevDeviation[i]`, when measured, is the
   * deviation of token prev[i] on layer l - 1.
   */
  select(l: number, prev: Int32Array, prevDeviation: Float64Array | null): Int32Array;
  /**
   * Optional, for plans whose sets after layer 0 are either the set before or "the k tokens of the
   * set before with the largest deviation measured on the layer before" (ties: lower index): what
   * layer l >= 1 does, k or 'keep'. The fusor then selects on the device (ops.topKRows), so the host
   * never waits for a deviation inside a request; the sets equal select()'s.
   */
  deviceRule?(l: number): number | 'keep';
}

export interface SelectionPolicy {
  readonly name: string;
  /** The fusor must supply `trueDeviation` (computes a full prefill). */
  readonly needsReference: boolean;
  /**
   * When set, [from, to) for a model of nLayers layers: the fusor runs the query rows alone through
   * layers 0..to-1 and supplies `queryAttention` for layers from..to-1. Throws ArgumentError when the
   * configured layers do not fit the model.
   */
  readonly queryAttentionLayers?: (nLayers: number) => readonly [number, number];
  plan(ctx: PolicyContext): SelectionPlan;
}

export interface PolicyOptions {
  /** Recompute ratio r in [0, 1]. Default 0.15 (0.16 for cacheblend-released). */
  ratio?: number;
  /** The check layer of cacheblend, cacheblend-released and lmcache-v1 (default 1). */
  checkLayer?: number;
  /** cacheblend: deviation measure (default 'kv'). */
  deviation?: DeviationKind;
  /**
   * cacheblend: share recomputed on the first layer after the check, r1 in [r, min(1, 2r)]; default
   * min(1, 4r/3) (0.20 at r = 0.15: of r1 in 0.15/0.20/0.225/0.30, the best or near-best KL with
   * 'kv' deviation on two stories260K contexts; larger r1 starves the last layers).
   */
  firstRatio?: number;
  /** random: seed (default 0). */
  seed?: number;
  /**
   * cacheblend-window: tokens taken from each high-deviation token onwards, within its chunk (default 8);
   * query-attention: tokens taken from each high-mass token backwards, within its chunk (default 1: the token alone).
   */
  window?: number;
  /** query-attention: the pre-pass runs the query through layers 0..attentionLayers-1 (default: all but the last, see defaultQueryLayers). */
  attentionLayers?: number;
  /** query-attention: the first of those layers whose mass ranks the tokens (default floor(0.7 x layers), see defaultQueryLayers). */
  attentionFrom?: number;
}

/** A policy by name. */
export function makePolicy(name: PolicyName, o: PolicyOptions = {}): SelectionPolicy {
  const ratio = checkRatio(o.ratio ?? (name === 'cacheblend-released' ? 0.16 : 0.15), 'ratio');
  switch (name) {
    case 'full-recompute': return fixedSet(name, (c) => all(c.nContext));
    case 'full-reuse': return fixedSet(name, () => new Int32Array(0));
    case 'prefix-caching': return fixedSet(name, (c) => range(c.chunkLengths[0] ?? 0, c.nContext));
    case 'cacheblend': {
      if (o.firstRatio !== undefined) checkRatio(o.firstRatio, 'firstRatio');
      return hkvd(name, ratio, o.checkLayer ?? 1, o.deviation ?? 'kv', true, o.firstRatio);
    }
    case 'cacheblend-released': return hkvd(name, ratio, o.checkLayer ?? 1, o.deviation ?? 'v', false);
    case 'lmcache-v1': return hkvd(name, ratio, o.checkLayer ?? 1, o.deviation ?? 'k', false);
    case 'cacheblend-window': return hkvdWindow(name, ratio, o.checkLayer ?? 1, o.deviation ?? 'kv', o.window ?? 8);
    case 'epic': return fixedSet(name, (c) => epicSet(c, ratio));
    case 'random': return fixedSet(name, (c) => randomSet(c.nContext, share(ratio, c.nContext), o.seed ?? 0));
    case 'oracle': return fixedSet(name, (c) => oracleSet(c, ratio), true);
    case 'query-attention': return queryAttention(name, ratio, o.attentionLayers, o.attentionFrom, o.window ?? 1);
    default: throw new ArgumentError(`unknown policy ${JSON.stringify(name)}; expected one of ${POLICY_NAMES.join(', ')}`);
  }
}

export function checkRatio(r: number, what: string): number {
  if (typeof r !== 'number' || !(r >= 0 && r <= 1)) throw new ArgumentError(`${what} must be a number in [0, 1] but received ${String(r)}`);
  return r;
}

/**
 * Per-layer token counts of gradual filtering for the m layers after the check: fractions linear
 * from r1 down to 2r - r1 (mean r), turned into integers whose total is round(r N m), largest
 * remainders first, sorted non-increasing (the set only shrinks).
 */
export function gradualSchedule(ratio: number, firstRatio: number, n: number, m: number): number[] {
  if (m <= 0) return [];
  const r1 = m === 1 ? ratio : Math.min(Math.max(firstRatio, ratio), 1, 2 * ratio);
  const step = m === 1 ? 0 : (2 * (r1 - ratio)) / (m - 1);
  const want = Array.from({ length: m }, (_, j) => Math.min(n, Math.max(0, (r1 - j * step) * n)));
  const total = Math.min(n * m, Math.round(ratio * n * m));
  const counts = want.map(Math.floor);
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = want.map((w, j) => [w - Math.floor(w), j] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, j] of order) {
    if (left <= 0) break;
    if (counts[j]! < n) { counts[j]!++; left--; }
  }
  return counts.sort((a, b) => b - a);
}

/** The indices of `prev` whose deviation is among the k largest (ties: lower index), ascending. */
export function topK(prev: Int32Array, dev: Float64Array, k: number): Int32Array {
  if (dev.length !== prev.length) throw new ArgumentError(`topK: ${prev.length} tokens but ${dev.length} deviations`);
  const order = Array.from(prev.keys()).sort((a, b) => dev[b]! - dev[a]! || a - b);
  return Int32Array.from(order.slice(0, k).map((i) => prev[i]!)).sort();
}

/** The check layer must be one of the model's layers. */
function checkLayerOf(name: string, checkLayer: number, nLayers: number): void {
  if (!Number.isInteger(checkLayer) || checkLayer < 0 || checkLayer >= nLayers)
    throw new ArgumentError(`${name}: check layer ${checkLayer} outside the model's layers [0, ${nLayers})`);
}

function hkvd(name: string, ratio: number, checkLayer: number, kind: DeviationKind, gradual: boolean, firstRatio?: number): SelectionPolicy {
  return {
    name,
    needsReference: false,
    plan(c) {
      checkLayerOf(name, checkLayer, c.nLayers);
      const m = c.nLayers - 1 - checkLayer;
      const counts = gradual
        ? gradualSchedule(ratio, firstRatio ?? Math.min(1, (4 * ratio) / 3), c.nContext, m)
        : new Array<number>(m).fill(share(ratio, c.nContext));
      return {
        checkLayers: [checkLayer],
        measureAt: (l) => (l === checkLayer || (gradual && l > checkLayer && l < c.nLayers - 1) ? kind : null),
        deviceRule: (l) => (l > checkLayer && (l === checkLayer + 1 || gradual) ? counts[l - checkLayer - 1]! : 'keep'),
        select(l, prev, dev) {
          if (l <= checkLayer) return prev;
          const k = counts[l - checkLayer - 1]!;
          if (l === checkLayer + 1 || gradual) {
            if (k >= prev.length) return prev; // nothing to drop (an empty set measures no deviation)
            if (!dev) throw new ArgumentError(`${name}: no deviation measured on layer ${l - 1}`);
            return topK(prev, dev, k);
          }
          return prev;
        },
      };
    },
  };
}

/**
 * HKVD seeds grown forward: on the check layer the tokens rank by deviation as in cacheblend, and each
 * seed, best first, brings itself and up to `window - 1` tokens after it in its chunk until r N
 * tokens are taken; that set is kept on every later layer. Why: a token that resolves a reference to
 * an earlier chunk (a pronoun) deviates at once, but the words after it that read it deviate only in
 * deeper layers, too late for a check on layer 1 to see them; they are the ones a question about the
 * entity reads.
 */
function hkvdWindow(name: string, ratio: number, checkLayer: number, kind: DeviationKind, window: number): SelectionPolicy {
  if (!Number.isInteger(window) || window < 1) throw new ArgumentError(`${name}: window must be a positive integer, got ${window}`);
  return {
    name,
    needsReference: false,
    plan(c) {
      checkLayerOf(name, checkLayer, c.nLayers);
      const k = share(ratio, c.nContext);
      const chunkEnd = new Int32Array(c.nContext);
      c.chunkStarts.forEach((s, i) => chunkEnd.fill(s + c.chunkLengths[i]!, s, s + c.chunkLengths[i]!));
      let chosen: Int32Array | null = null;
      return {
        checkLayers: [checkLayer],
        measureAt: (l) => (l === checkLayer ? kind : null),
        select(l, prev, dev) {
          if (l <= checkLayer) return prev;
          if (chosen) return chosen;
          if (!dev) throw new ArgumentError(`${name}: no deviation measured on layer ${l - 1}`);
          const taken = new Uint8Array(c.nContext);
          let count = 0;
          for (const i of Array.from(prev.keys()).sort((a, b) => dev[b]! - dev[a]! || a - b)) {
            for (let t = prev[i]!; t < Math.min(prev[i]! + window, chunkEnd[prev[i]!]!) && count < k; t++)
              if (!taken[t]) { taken[t] = 1; count++; }
            if (count >= k) break;
          }
          chosen = Int32Array.from(Array.from(taken.keys()).filter((t) => taken[t]));
          return chosen;
        },
      };
    },
  };
}

/** The same set on every layer, no check layer. */
function fixedSet(name: string, pick: (c: PolicyContext) => Int32Array, needsReference = false): SelectionPolicy {
  return {
    name,
    needsReference,
    plan(c) {
      const set = pick(c);
      return { checkLayers: [], measureAt: () => null, select: (l, prev) => (l === 0 ? set : prev) };
    },
  };
}

function share(ratio: number, n: number): number {
  return Math.min(n, Math.round(ratio * n));
}

function all(n: number): Int32Array {
  return range(0, n);
}

function range(a: number, b: number): Int32Array {
  return Int32Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
}

/** The first k_i tokens of each chunk, sum k_i = round(r N), spread as evenly as the chunk lengths allow. */
function epicSet(c: PolicyContext, ratio: number): Int32Array {
  let left = share(ratio, c.nContext);
  const k = c.chunkLengths.map(() => 0);
  while (left > 0) {
    let gave = false;
    for (let i = 0; i < k.length && left > 0; i++) {
      if (k[i]! < c.chunkLengths[i]!) { k[i]!++; left--; gave = true; }
    }
    if (!gave) break;
  }
  const out: number[] = [];
  c.chunkStarts.forEach((s, i) => { for (let j = 0; j < k[i]!; j++) out.push(s + j); });
  return Int32Array.from(out);
}

function randomSet(n: number, k: number, seed: number): Int32Array {
  const u = seededUniform(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return Int32Array.from(idx.slice(0, k)).sort();
}

function oracleSet(c: PolicyContext, ratio: number): Int32Array {
  const dev = c.trueDeviation;
  if (!dev || dev.length !== c.nLayers) throw new ArgumentError('oracle: the fusor supplied no true deviation per layer');
  return topK(all(c.nContext), normalisedSum(dev, c.nContext), share(ratio, c.nContext));
}

/**
 * query-attention's layers when none are configured, for a model of L layers: rank by layers
 * floor(0.7 L)..L-2 (the pre-pass stops before the last layer, which writes the next token rather than
 * looking anything up). Chosen on tuning sets kept apart from the evaluation sets
 * (`make.ts heldout --seed 2002`, back-reference questions): on kvlab-qa (8 layers) layers 5-6 were
 * the best of 12 ranges, on a 16-layer model trained the same way 11-14 tied for best; early layers
 * rank the pronoun and chunk starts, not the word the question copies.
 */
export function defaultQueryLayers(nLayers: number, layers?: number, from?: number): [number, number] {
  const to = layers ?? Math.max(1, nLayers - 1);
  return [from ?? Math.min(Math.floor(0.7 * nLayers), to - 1), to];
}

/** See the header: top question-attention tokens, each grown backwards within its chunk; one set on every layer. */
function queryAttention(name: string, ratio: number, layers: number | undefined, from: number | undefined, window: number): SelectionPolicy {
  if (!Number.isInteger(window) || window < 1) throw new ArgumentError(`${name}: window must be a positive integer, got ${window}`);
  if (layers !== undefined && (!Number.isInteger(layers) || layers < 1))
    throw new ArgumentError(`${name}: attentionLayers must be a positive integer, got ${layers}`);
  if (from !== undefined && (!Number.isInteger(from) || from < 0 || (layers !== undefined && from >= layers)))
    throw new ArgumentError(`${name}: attentionFrom must be an integer in [0, ${layers ?? 'attentionLayers'}), got ${from}`);
  const layersFor = (nLayers: number): [number, number] => {
    const [f, t] = defaultQueryLayers(nLayers, layers, from);
    if (t > nLayers) throw new ArgumentError(`${name}: attentionLayers ${t} exceeds the model's ${nLayers} layers`);
    if (f >= t) throw new ArgumentError(`${name}: attentionFrom ${f} must be below attentionLayers ${t}`);
    return [f, t];
  };
  return {
    name,
    needsReference: false,
    queryAttentionLayers: layersFor,
    plan(c) {
      const [f, t] = layersFor(c.nLayers);
      const mass = c.queryAttention;
      if (!mass || mass.length !== t - f || mass.some((m) => m.length !== c.nContext))
        throw new ArgumentError(`${name}: the fusor supplied no query attention mass for layers ${f}..${t - 1}`);
      const set = grownBackwards(c, normalisedSum(mass, c.nContext), share(ratio, c.nContext), window);
      return { checkLayers: [], measureAt: () => null, select: (l, prev) => (l === 0 ? set : prev) };
    },
  };
}

/** Per token: the sum over the arrays of value / that array's mean (an array of zeros adds nothing). */
function normalisedSum(arrays: readonly Float64Array[], n: number): Float64Array {
  const score = new Float64Array(n);
  for (const d of arrays) {
    let mean = 0;
    for (const v of d) mean += v;
    mean /= Math.max(1, d.length);
    if (mean > 0) for (let i = 0; i < n; i++) score[i]! += d[i]! / mean;
  }
  return score;
}

/**
 * k tokens: by score, best first (ties: lower index), each seed with up to `window - 1` tokens
 * before it in its chunk (nearest first), skipping tokens already taken, until k are taken.
 */
export function grownBackwards(c: Pick<PolicyContext, 'nContext' | 'chunkStarts' | 'chunkLengths'>, score: Float64Array, k: number,
  window: number): Int32Array {
  const chunkStart = new Int32Array(c.nContext);
  c.chunkStarts.forEach((s, i) => chunkStart.fill(s, s, s + c.chunkLengths[i]!));
  const taken = new Uint8Array(c.nContext);
  let count = 0;
  const order = Array.from({ length: c.nContext }, (_, i) => i).sort((a, b) => score[b]! - score[a]! || a - b);
  for (const seed of order) {
    if (count >= k) break;
    for (let t = seed; t >= Math.max(chunkStart[seed]!, seed - window + 1) && count < k; t--)
      if (!taken[t]) { taken[t] = 1; count++; }
  }
  return Int32Array.from(Array.from(taken.keys()).filter((t) => taken[t]));
}
