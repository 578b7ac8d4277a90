/**
 * CacheGen's quality levels and the released variant's bins.
 *
 * kvlab's codec stores a step per (layer, K|V, channel) for anchors and one for deltas
 * (FORMAT.md): a plane-wide step, `fraction x` the plane's mean channel max |x|, raised to
 * `max|x| / m` for a channel whose range would not fit in -m..m levels (so nothing clips). Entropy
 * coding makes the rate follow the step, and equal steps across channels put the bits where the
 * signal is. A level gives the fractions per layer third (the paper's layer groups) for K and V,
 * anchors and deltas separately, and the level counts m that bound the alphabets.
 * Rows are [first third, second third, last third].
 */
import { ArgumentError } from '../runtime/errors.js';

/** Steps of one of K or V per layer third, as fractions of the plane's mean channel max |x|. */
export interface PlaneSteps {
  readonly anchor: readonly [number, number, number];
  readonly delta: readonly [number, number, number];
}

export interface CachegenLevel {
  readonly name: string;
  /** Anchor group size G: token t is an anchor when t % G == 0. */
  readonly group: number;
  /** Anchor levels m (symbols -m..m) per layer third, 1..31: the widest range an anchor may need. */
  readonly anchor: readonly [number, number, number];
  /** Delta levels per layer third, 1..31. */
  readonly delta: readonly [number, number, number];
  /** Steps of K and of V (0: max|x| / m per channel). */
  readonly k: PlaneSteps;
  readonly v: PlaneSteps;
}

/**
 * Best quality first. Chosen on stories260K by a greedy rate-distortion allocation: from all
 * fractions 0.06, repeatedly coarsen (x1.6) the one knob (K|V x layer third x anchor|delta) that saves
 * the most bits per unit of KL against exact KV, on a tuning set of 16 stories the model sampled
 * (seeds 9000+, 400 context + 64 continuation tokens; not datasets/stories260k-codec), tables from a
 * profile of 3 other stories; the levels are points of that path (KL 0.006 / 0.011 / 0.038, perplexity
 * +0.4% / +1.8% / +4.3% there). What it found: K's deltas are the costliest to coarsen; V tolerates
 * 2-10x coarser steps; V's anchors in the first third can go almost entirely (their values are then
 * carried by the deltas), unlike the paper's deeper-is-coarser on 7B+ models. They predate raw planes (FORMAT.md), which keep
 * a plane's delta steps and code it in fewer bits; retuning them bought little there (codec eval:
 * default 5.05x -> 5.34x smaller than fp16 with a profile, KL 0.0120 -> 0.0124).
 */
export const CACHEGEN_LEVELS: readonly CachegenLevel[] = [
  { name: 'high', group: 10, anchor: [31, 31, 31], delta: [15, 15, 15],
    k: { anchor: [0.15, 0.1, 0.06], delta: [0.06, 0.06, 0.06] },
    v: { anchor: [0.25, 0.4, 0.4], delta: [0.4, 0.25, 0.25] } },
  { name: 'default', group: 10, anchor: [31, 31, 31], delta: [15, 15, 15],
    k: { anchor: [0.15, 0.15, 0.1], delta: [0.06, 0.06, 0.1] },
    v: { anchor: [1.6, 0.63, 0.4], delta: [0.4, 0.4, 0.25] } },
  { name: 'low', group: 10, anchor: [31, 31, 31], delta: [15, 15, 15],
    k: { anchor: [0.25, 0.25, 0.1], delta: [0.15, 0.15, 0.15] },
    v: { anchor: [1.6, 1.0, 0.4], delta: [0.4, 0.63, 0.25] } },
];

export const CACHEGEN_DEFAULT_LEVEL = 'default';

/**
 * Levels of `cachegen-pca` (pca.ts), whose coefficients concentrate the signal in a few components:
 * coarser K steps than CacheGen's own levels buy more there. Chosen on a tuning set of 8 stories the
 * model sampled (seeds 7000 + i, 447 context + 64 continuation tokens; disjoint from
 * datasets/stories260k-codec's evaluated and profile stories), basis and tables from the profile
 * stories, over a grid around CacheGen's 'low' (K delta steps 0.15-0.5, K anchors 0.25 or 0.63, V
 * delta steps x0.63-1): each level is the most compressed point whose mean KL there stays within
 * 0.010 (default: 9.0x), 0.030 (low: 12.9x) and 0.036 (lowest: 14.0x). KL rather than perplexity
 * picks them: on 8 x 64 tokens the perplexity change is the noisier of the two. V steps finer than
 * 'low''s bought more quality per bit than finer K once raw planes (FORMAT.md) made V cheaper.
 */
export const PCA_LEVELS: readonly CachegenLevel[] = [
  CACHEGEN_LEVELS[0]!,
  { name: 'default', group: 10, anchor: [31, 31, 31], delta: [15, 15, 15],
    k: { anchor: [0.25, 0.25, 0.1], delta: [0.25, 0.25, 0.25] },
    v: { anchor: [1.6, 1.0, 0.4], delta: [0.252, 0.397, 0.158] } },
  { name: 'low', group: 10, anchor: [31, 31, 31], delta: [15, 15, 15],
    k: { anchor: [0.63, 0.63, 0.25], delta: [0.4, 0.4, 0.4] },
    v: { anchor: [1.6, 1.0, 0.4], delta: [0.4, 0.63, 0.25] } },
  { name: 'lowest', group: 10, anchor: [31, 31, 31], delta: [15, 15, 15],
    k: { anchor: [0.63, 0.63, 0.25], delta: [0.5, 0.5, 0.5] },
    v: { anchor: [1.6, 1.0, 0.4], delta: [0.4, 0.63, 0.25] } },
];

/** The layer third of layer l of L (0, 1 or 2). */
export function layerThird(l: number, nLayers: number): number {
  return Math.min(2, Math.floor((l * 3) / nLayers));
}

export function cachegenLevel(name: string, table: readonly CachegenLevel[] = CACHEGEN_LEVELS): CachegenLevel {
  const lv = table.find((x) => x.name === name);
  if (!lv) throw new ArgumentError(`Expected a cachegen level (${table.map((x) => x.name).join(', ')}) but received ${JSON.stringify(name)}`);
  return lv;
}

/** Per (layer, K|V) anchor and delta levels, in the container's order. */
export function cachegenPlaneLevels(level: CachegenLevel, nLayers: number):
  { mAnchor: Uint8Array; mDelta: Uint8Array; fAnchor: Float32Array; fDelta: Float32Array } {
  const mAnchor = new Uint8Array(nLayers * 2);
  const mDelta = new Uint8Array(nLayers * 2);
  const fAnchor = new Float32Array(nLayers * 2);
  const fDelta = new Float32Array(nLayers * 2);
  for (let l = 0; l < nLayers; l++) {
    const g = layerThird(l, nLayers);
    for (let kv = 0; kv < 2; kv++) {
      const steps = kv === 0 ? level.k : level.v;
      mAnchor[l * 2 + kv] = level.anchor[g]!;
      mDelta[l * 2 + kv] = level.delta[g]!;
      fAnchor[l * 2 + kv] = steps.anchor[g]!;
      fDelta[l * 2 + kv] = steps.delta[g]!;
    }
  }
  return { mAnchor, mDelta, fAnchor, fDelta };
}

/**
 * LMCache's bins for the released CacheGen: models with fewer than 10 layers get 32 bins everywhere;
 * otherwise K layers 0-9 get 32 and deeper K layers 16, V layers 0-1 get 32 and deeper V layers 16.
 */
export function releasedBins(nLayers: number): Uint8Array {
  const bins = new Uint8Array(nLayers * 2);
  for (let l = 0; l < nLayers; l++) {
    bins[l * 2] = nLayers < 10 || l < 10 ? 32 : 16;
    bins[l * 2 + 1] = nLayers < 10 || l < 2 ? 32 : 16;
  }
  return bins;
}
