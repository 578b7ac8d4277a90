import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { POLICY_NAMES, type DeviationKind, type PolicyName, type PolicyOptions } from '../../cacheblend/policies.js';
import { QA_KINDS, readQaSet, type QaRecord } from '../../eval/qa/dataset.js';
import { QA_FIXED_METHODS, QA_RATIO_METHODS, QA_RATIOS, qaEval, type QaEvalRow } from '../../eval/qa/eval.js';
import { loadModel } from '../../model/load.js';
import { PACKAGE_ROOT } from '../../runtime/addon.js';
import { ArgumentError, NotFoundError } from '../../runtime/errors.js';
import { num, str, type Command, type Values } from '../command.js';
import { modelSearchPath } from '../search-path.js';

/** kvlab's bundled QA model (models/kvlab-qa), trained on datasets/multidoc-qa. */
export const DEFAULT_QA_MODEL = 'kvlab-qa';
const DEFAULT_SET = join(PACKAGE_ROOT, 'datasets', 'multidoc-qa', 'v1');

function readSet(dir: string, perKind: number | undefined, kinds: readonly string[]): QaRecord[] {
  return kinds.flatMap((kind) => {
    const path = join(dir, `${kind}.jsonl`);
    if (!existsSync(path)) throw new NotFoundError(`${path} does not exist (a QA set folder holds ${QA_KINDS.map((k) => `${k}.jsonl`).join(', ')})`);
    const recs = readQaSet(path);
    return perKind ? recs.slice(0, perKind) : recs;
  });
}

function table(rows: QaEvalRow[]): string[] {
  const kinds = [...QA_KINDS, 'all'];
  const key = (r: QaEvalRow) => `${r.method}@${r.requestedRatio}`;
  const methods = [...new Map(rows.map((r) => [key(r), r])).values()];
  const cell = (m: QaEvalRow, k: string) => {
    const r = rows.find((x) => key(x) === key(m) && x.kind === k);
    return r ? `${r.em.toFixed(3)} ${r.f1.toFixed(3)}` : '-';
  };
  const labels = kinds.map((k) => `${k} EM/F1`);
  const head = ['method'.padEnd(16), 'ratio', '  r  ', 'compute', ...labels].join('  ');
  return [head, ...methods.map((m) => [m.method.padEnd(16), m.requestedRatio === null ? '  -  ' : m.requestedRatio.toFixed(2).padStart(5),
    m.ratio.toFixed(3), m.computeFraction.toFixed(3).padStart(7), ...kinds.map((k, i) => cell(m, k).padEnd(labels[i]!.length))].join('  '))];
}

/** The cacheblend-family knobs from the flags (the policies check their ranges). */
function policyFlags(values: Values): Omit<PolicyOptions, 'ratio'> {
  const o: Omit<PolicyOptions, 'ratio'> = {};
  const check = num(values, 'check-layer', 'qa');
  if (check !== undefined) o.checkLayer = check;
  const dev = str(values, 'deviation');
  if (dev !== undefined) {
    if (dev !== 'k' && dev !== 'v' && dev !== 'kv') throw new ArgumentError(`--deviation must be k, v or kv, got '${dev}'`);
    o.deviation = dev;
  }
  const first = num(values, 'first-ratio', 'qa');
  if (first !== undefined) o.firstRatio = first;
  const window = num(values, 'window', 'qa');
  if (window !== undefined) o.window = window;
  const layers = num(values, 'attention-layers', 'qa');
  if (layers !== undefined) o.attentionLayers = layers;
  const from = num(values, 'attention-from', 'qa');
  if (from !== undefined) o.attentionFrom = from;
  return o;
}

export const qaCommand: Command = {
  name: 'qa',
  positionals: 'eval',
  summary: 'Multi-document QA: EM and F1 per question kind of every CacheBlend method on kvlab\'s QA model.',
  description: 'eval: questions from a held-out set of datasets/multidoc-qa (single-chunk, two-hop, back-reference);\n' +
    'each chunk is prefilled on its own after the prompt prefix, each method fuses the chunks with the\n' +
    'question and the answer is decoded greedily from the fused KV. Rows: method, requested ratio, the\n' +
    'recompute ratio r and compute fraction (DESIGN.md), EM/F1 per kind. JSON: {"rows": [...]}.\n' +
    'Cost on a 2-core CPU: about 0.2 s per question and method (all 39 rows on all 300 questions: ~40 min).',
  options: {
    model: { type: 'string', value: 'NAME|PATH', help: 'model', default: DEFAULT_QA_MODEL },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    set: { type: 'string', value: 'DIR', help: 'a QA set folder ({single,two-hop,back-reference}.jsonl); default: the bundled datasets/multidoc-qa/v1' },
    'per-kind': { type: 'string', value: 'N', help: 'use the first N questions of each kind (default: all)' },
    ratios: { type: 'string', value: 'R[,R...]', help: 'recompute ratios in [0, 1]', default: QA_RATIOS.join(',') },
    methods: { type: 'string', value: 'M[,M...]', help: `methods (default: ${[...QA_FIXED_METHODS, ...QA_RATIO_METHODS].join(',')})` },
    device: { type: 'string', value: 'cpu|cuda[:N]', help: 'device', default: 'cpu' },
    kinds: { type: 'string', value: 'K[,K...]', help: `question kinds (default: ${QA_KINDS.join(',')})` },
    'check-layer': { type: 'string', value: 'L', help: 'cacheblend-family methods: the check layer (default 1)' },
    deviation: { type: 'string', value: 'k|v|kv', help: 'cacheblend-family methods: what the deviation compares (cacheblend default kv)' },
    window: { type: 'string', value: 'W', help: 'cacheblend-window: tokens from each seed onwards (default 8); query-attention: backwards (default 1)' },
    'attention-layers': { type: 'string', value: 'L', help: 'query-attention: the query pre-pass runs layers 0..L-1 (default: all but the last)' },
    'attention-from': { type: 'string', value: 'F', help: 'query-attention: rank by the mass of layers F..L-1 (default floor(0.7 x the model\'s layers))' },
    'first-ratio': { type: 'string', value: 'R', help: 'cacheblend: the share kept at the check layer, in [r, 2r] (default 4r/3)' },
    json: { type: 'boolean', help: 'print JSON' },
  },
  async run(values, pos, io) {
    if (pos[0] !== 'eval') throw new ArgumentError(`kvlab qa: unknown subcommand '${pos[0] ?? ''}' (known: eval)`);
    const setFlag = str(values, 'set');
    const dir = setFlag ? resolve(io.cwd, setFlag) : DEFAULT_SET;
    const perKind = num(values, 'per-kind', 'qa');
    if (perKind !== undefined && !(Number.isInteger(perKind) && perKind >= 1)) throw new ArgumentError(`--per-kind must be a positive integer, got ${perKind}`);
    const kinds = str(values, 'kinds')?.split(',') ?? [...QA_KINDS];
    for (const k of kinds) if (!(QA_KINDS as readonly string[]).includes(k)) throw new ArgumentError(`--kinds: unknown kind '${k}' (known: ${QA_KINDS.join(', ')})`);
    const records = readSet(dir, perKind, kinds);
    const policyOptions = policyFlags(values);
    const ratios = str(values, 'ratios')!.split(',').map(Number);
    for (const r of ratios) if (!(r >= 0 && r <= 1)) throw new ArgumentError(`--ratios: ${r} is outside [0, 1]`);
    const asked = str(values, 'methods')?.split(',') as PolicyName[] | undefined;
    // Any CacheBlend policy may be asked for; those that take a ratio run at every --ratios value.
    for (const m of asked ?? []) if (!POLICY_NAMES.includes(m)) throw new ArgumentError(`--methods: unknown method '${m}' (known: ${POLICY_NAMES.join(', ')})`);
    const modelName = str(values, 'model')!;
    const { model, tokenizer } = await loadModel(modelName, {
      searchPath: modelSearchPath(str(values, 'models'), io), device: str(values, 'device') as never,
    });
    try {
      if (!tokenizer) throw new NotFoundError(`model ${modelName} has no tokenizer; kvlab qa eval needs one to build prompts`);
      const t0 = performance.now();
      const rows = qaEval(model, tokenizer, records, {
        ratios,
        fixedMethods: asked ? QA_FIXED_METHODS.filter((m) => asked.includes(m)) : QA_FIXED_METHODS,
        ratioMethods: asked ? asked.filter((m) => !QA_FIXED_METHODS.includes(m)) : QA_RATIO_METHODS,
        policyOptions,
        onProgress: values.json ? undefined : (d, t) => { if (d % 10 === 0 || d === t) io.err(`  question ${d}/${t}`); },
      });
      const seconds = (performance.now() - t0) / 1000;
      if (values.json) {
        io.out(JSON.stringify({ set: dir, model: modelName, device: model.device.toString(), questions: records.length, policyOptions, seconds, rows }, null, 1));
      } else {
        io.out(`${records.length} questions (${dir}), model ${modelName} on ${model.device}, ${seconds.toFixed(0)} s`);
        for (const l of table(rows)) io.out(l);
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};
