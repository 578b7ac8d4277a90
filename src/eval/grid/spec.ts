/**
 * An experiment grid spec (JSON) and its expansion into cells:
 *
 *   {"name": "quick", "version": 1,
 *    "models": ["stories260K"],
 *    "datasets": [{"kind": "stories260k-blend", "path": "../stories260k-blend/v1.json", "limit": 2},
 *                 {"kind": "longbench", "path": "../longbench-sample/sample.jsonl", "limit": 3, "options": {...}}],
 *    "methods": ["full-recompute", "full-reuse", "cacheblend"],
 *    "codecs": [{"codec": "none"}, {"codec": "cachegen", "levels": ["default"]},
 *               {"codec": "cachegen", "levels": ["all"], "profile": "../stories260k-codec/v1.json"}],
 *    "ratios": [0.15, 0.3],
 *    "codecMethods": ["full-reuse", "cacheblend"]}
 *
 * Cells are model x dataset x method x codec x level x ratio, where a ratio applies only to the
 * methods that take one (RATIO_METHODS of src/cacheblend) and a codec other than "none" only to
 * `codecMethods` (default: every method that reuses chunk KV, i.e. all but full-recompute). A codec
 * other than "none" means CacheBlend over codec-compressed chunks: each chunk's KV is encoded and
 * decoded at that level before fusing. Levels: names, "default" (the codec's default) or "all".
 * `profile` (cachegen, and required by cachegen-pca for its basis): encode with a per-model profile built from that codec context set's
 * profileContexts instead of shipping tables in every chunk. Relative paths (datasets, profiles) are
 * resolved against the spec file's folder.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { POLICY_NAMES, type PolicyName } from '../../cacheblend/policies.js';
import { RATIO_METHODS } from '../../cacheblend/eval.js';
import { ArgumentError, FormatError } from '../../runtime/errors.js';

export interface GridDatasetSpec {
  kind: string;
  path: string;
  /** Use the first `limit` items only. */
  limit?: number;
  /** Kind-specific options (e.g. LongBench's topK, chunkTokens, maxNewTokens). */
  options?: Record<string, unknown>;
}

export interface GridCodecSpec { codec: string; levels?: string[]; profile?: string }

export interface GridSpec {
  name: string;
  version: number;
  models: string[];
  datasets: GridDatasetSpec[];
  methods: PolicyName[];
  codecs: GridCodecSpec[];
  ratios: number[];
  codecMethods?: PolicyName[];
}

/** One cell: the parameters that key its result. `level` is the codec's level name (null without codec). */
export interface GridCell {
  model: string;
  dataset: GridDatasetSpec;
  method: PolicyName;
  codec: string;
  level: string | null;
  /** Path of the codec context set whose profileContexts the per-model profile is built from. */
  profile: string | null;
  ratio: number | null;
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Validates a parsed spec; relative dataset paths are resolved against `baseDir`. */
export function checkGridSpec(d: unknown, source: string, baseDir = '.'): GridSpec {
  const bad = (what: string) => new FormatError(`${source}: ${what}`);
  if (!isObj(d)) throw bad('expected a JSON object');
  if (typeof d.name !== 'string' || d.name.length === 0) throw bad("'name' must be a non-empty string");
  if (!Number.isInteger(d.version)) throw bad("'version' must be an integer");
  const strs = (k: string) => {
    const v = d[k];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x.length > 0)) throw bad(`'${k}' must be a non-empty array of strings`);
    return v as string[];
  };
  const models = strs('models');
  const methods = strs('methods');
  for (const m of methods) if (!POLICY_NAMES.includes(m as PolicyName)) throw bad(`unknown method '${m}' (known: ${POLICY_NAMES.join(', ')})`);
  const codecMethods = d.codecMethods === undefined ? undefined : strs('codecMethods');
  for (const m of codecMethods ?? []) if (!methods.includes(m)) throw bad(`codecMethods: '${m}' is not one of the spec's methods`);
  if (!Array.isArray(d.datasets) || d.datasets.length === 0) throw bad("'datasets' must be a non-empty array");
  const datasets = d.datasets.map((x, i): GridDatasetSpec => {
    if (!isObj(x) || typeof x.kind !== 'string' || typeof x.path !== 'string') throw bad(`datasets[${i}] needs kind and path strings`);
    if (x.limit !== undefined && !(Number.isInteger(x.limit) && (x.limit as number) > 0)) throw bad(`datasets[${i}].limit must be a positive integer`);
    if (x.options !== undefined && !isObj(x.options)) throw bad(`datasets[${i}].options must be an object`);
    return { kind: x.kind, path: resolve(baseDir, x.path), ...(x.limit !== undefined ? { limit: x.limit as number } : {}),
      ...(x.options !== undefined ? { options: x.options as Record<string, unknown> } : {}) };
  });
  const codecs = (d.codecs ?? [{ codec: 'none' }]) as unknown;
  if (!Array.isArray(codecs) || codecs.length === 0) throw bad("'codecs' must be a non-empty array");
  const codecSpecs = codecs.map((c, i): GridCodecSpec => {
    if (!isObj(c) || typeof c.codec !== 'string') throw bad(`codecs[${i}] needs a 'codec' string`);
    if (c.levels !== undefined && !(Array.isArray(c.levels) && c.levels.length > 0 && c.levels.every((l) => typeof l === 'string')))
      throw bad(`codecs[${i}].levels must be a non-empty array of strings`);
    if (c.profile !== undefined && (typeof c.profile !== 'string' || c.codec === 'none')) throw bad(`codecs[${i}].profile must be a path, and needs a codec`);
    return { codec: c.codec, ...(c.levels ? { levels: c.levels as string[] } : {}), ...(typeof c.profile === 'string' ? { profile: resolve(baseDir, c.profile) } : {}) };
  });
  const ratios = (d.ratios ?? []) as unknown;
  if (!Array.isArray(ratios) || !ratios.every((r) => typeof r === 'number' && r >= 0 && r <= 1)) throw bad("'ratios' must be an array of numbers in [0, 1]");
  if (methods.some((m) => RATIO_METHODS.includes(m as PolicyName)) && ratios.length === 0) throw bad("'ratios' is empty but a method takes a ratio");
  return { name: d.name, version: d.version as number, models, datasets, methods: methods as PolicyName[], codecs: codecSpecs,
    ratios: ratios as number[], ...(codecMethods ? { codecMethods: codecMethods as PolicyName[] } : {}) };
}

export function readGridSpec(path: string): GridSpec {
  let d: unknown;
  try {
    d = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`${path}: ${(e as Error).message}`);
  }
  return checkGridSpec(d, path, dirname(path));
}

/** Level names of a codec entry, given the codec's levels and default. */
export function resolveLevels(c: GridCodecSpec, levels: readonly string[], defaultLevel: string): string[] {
  const want = c.levels ?? ['default'];
  const out: string[] = [];
  for (const l of want) {
    const add = l === 'all' ? levels : l === 'default' ? [defaultLevel] : [l];
    for (const x of add) {
      if (!levels.includes(x)) throw new ArgumentError(`codec ${c.codec} has no level '${x}' (levels: ${levels.join(', ')})`);
      if (!out.includes(x)) out.push(x);
    }
  }
  return out;
}

/** Every cell of the spec, in run order. `levelsOf` resolves a codec's levels (codec 'none' is never asked). */
export function expandGrid(spec: GridSpec, levelsOf: (c: GridCodecSpec) => string[]): GridCell[] {
  const cells: GridCell[] = [];
  const overCodec = new Set(spec.codecMethods ?? spec.methods.filter((m) => m !== 'full-recompute'));
  for (const model of spec.models)
    for (const dataset of spec.datasets)
      for (const method of spec.methods)
        for (const c of spec.codecs) {
          if (c.codec !== 'none' && !overCodec.has(method)) continue;
          const levels = c.codec === 'none' ? [null] : levelsOf(c);
          for (const level of levels)
            for (const ratio of RATIO_METHODS.includes(method) ? spec.ratios : [null])
              cells.push({ model, dataset, method, codec: c.codec, level, profile: c.profile ?? null, ratio });
        }
  return cells;
}

/** The key a cell's result is stored under: its parameters, canonical JSON. */
export function cellKey(c: GridCell): string {
  const d = c.dataset;
  return JSON.stringify([c.model, d.kind, d.path, d.limit ?? null, d.options ?? null, c.method, c.codec, c.level, c.profile, c.ratio]);
}
