/**
 * `kvlab codec eval` (size and quality of every codec and level on datasets/stories260k-codec) and
 * `kvlab codec observe` (CacheGen's three observations as tidy rows). Subcommands are branches of
 * `run`; `codec bench` (the codec's throughput benchmark) is another branch.
 */
import { join } from 'node:path';
import { codecs as allCodecs, getCodec } from '../../cachegen/index.js';
import { readCodecContextSet } from '../../eval/codec-contexts.js';
import { codecEval } from '../../eval/codec-eval.js';
import { cachegenProfiles, pcaProfiles } from '../../eval/codec-profiles.js';
import { cachegenObservations } from '../../eval/observations.js';
import { codecBenchCommand } from './codec-bench.js';
import { loadModel } from '../../model/load.js';
import { PACKAGE_ROOT } from '../../runtime/addon.js';
import { ArgumentError } from '../../runtime/errors.js';
import { num, str, type CliIO, type Command, type Values } from '../command.js';
import { modelSearchPath } from '../search-path.js';

const fmt = (x: number, d = 4) => (Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(d) : x.toExponential(2));

async function contextsAndModel(values: Values, io: CliIO) {
  const path = str(values, 'dataset') ?? join(PACKAGE_ROOT, 'datasets', 'stories260k-codec', 'v1.json');
  const set = readCodecContextSet(path);
  const limit = num(values, 'contexts', 'codec');
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new ArgumentError(`kvlab codec: --contexts must be a positive integer, got ${limit}`);
  const contexts = limit ? set.contexts.slice(0, limit) : set.contexts;
  const modelName = str(values, 'model') ?? 'stories260K';
  const { model } = await loadModel(modelName, { searchPath: modelSearchPath(str(values, 'models'), io), device: (str(values, 'device') ?? 'cpu') as never });
  return { set, contexts, model, modelName };
}

async function codecEvalCommand(values: Values, io: CliIO): Promise<number> {
  const names = str(values, 'codecs')?.split(',').filter((s) => s.length > 0);
  const codecs = names ? names.map((n) => getCodec(n)) : allCodecs();
  const { set, contexts, model, modelName } = await contextsAndModel(values, io);
  try {
    // CacheGen's per-model profiles, built from the set's profile contexts (never the evaluated ones).
    const cg = codecs.find((c) => c.name === 'cachegen');
    const source = `${set.name}-v${set.version}`;
    const withProfiles = cg !== undefined && set.profileContexts !== undefined && !values['no-profiles'];
    const profiles = withProfiles ? cachegenProfiles(model, set.profileContexts!, cg!.levels, source) : [];
    // cachegen-pca exists only with a per-model basis: it runs with its profiles, beside cachegen.
    const pca = withProfiles ? pcaProfiles(model, set.profileContexts!, source) : null;
    const all = pca ? [...codecs, pca.codec] : codecs;
    const r = codecEval(model, contexts, all, { profiles: [...profiles, ...(pca?.variants ?? [])], ...(pca ? { levels: { [pca.codec.name]: [] } } : {}),
      onProgress: values.json ? undefined : (d, t) => io.err(`  context ${d}/${t}`) });
    if (values.json) {
      io.out(JSON.stringify({ dataset: `${set.name} v${set.version}`, model: modelName, device: model.device.toString(), contexts: contexts.length,
        int8Reference: r.int8Reference, rows: r.rows, profiles: r.profiles }, null, 1));
      return 0;
    }
    io.out(`${set.name} v${set.version}, ${contexts.length} contexts, ${modelName} on ${model.device}` +
      (r.int8Reference ? `; int8 reference ${r.int8Reference.codec}/${r.int8Reference.level} at ${r.int8Reference.bitsPerValue.toFixed(3)} bits` : ''));
    io.out('codec               level      bits/val  x fp16  x int8  ppl%     KL        top1   default');
    for (const x of r.rows)
      io.out(`${(x.codec + (x.profile ? '+profile' : '')).padEnd(19)} ${x.level.padEnd(10)} ${x.bitsPerValue.toFixed(3).padStart(8)}  ${x.ratioVsFp16.toFixed(2).padStart(6)}  ${x.ratioVsInt8.toFixed(2).padStart(6)}  ${x.pplDeltaPct.toFixed(2).padStart(6)}  ${fmt(x.kl).padEnd(8)}  ${x.top1.toFixed(3)}  ${x.isDefault ? 'yes' : ''}`);
    for (const p of r.profiles)
      io.out(`profile ${p.name}: ${p.bytes} bytes, built from ${p.builtFromTokens} tokens (${p.bitsPerValueAmortised.toFixed(4)} bits/value if spread over this run's ${p.amortisedOverTokens} tokens)`);
    return 0;
  } finally {
    model.dispose();
  }
}

async function codecObserveCommand(values: Values, io: CliIO): Promise<number> {
  const { set, contexts, model, modelName } = await contextsAndModel(values, io);
  try {
    const o = cachegenObservations(model, contexts, { onProgress: values.json ? undefined : (d, t) => io.err(`  context ${d}/${t}`) });
    if (values.json) {
      io.out(JSON.stringify({ dataset: `${set.name} v${set.version}`, model: modelName, device: model.device.toString(), contexts: contexts.length, ...o }));
      return 0;
    }
    io.out(`${set.name} v${set.version}, ${contexts.length} contexts, ${modelName}`);
    io.out('(a) variance of raw values / deltas against the group anchor, per layer:');
    for (const r of o.deltaVariance) io.out(`  layer ${r.layer} ${r.kv}: raw ${fmt(r.rawVariance)}  delta ${fmt(r.deltaVariance)}  ratio ${r.varianceRatio.toFixed(2)} (within channel ${r.channelVarianceRatio.toFixed(2)})`);
    io.out('(b) one layer group quantized coarsely, the rest exact:');
    for (const r of o.sensitivity) io.out(`  layers ${r.layers} at ${r.bits} bits: ppl ${r.pplDeltaPct.toFixed(2)}%  KL ${fmt(r.kl)}  top1 ${r.top1.toFixed(3)}`);
    io.out('(c) entropy of quantized values (bits/value) by probability-model grouping:');
    for (const r of o.entropy) io.out(`  ${r.series.padEnd(5)} ${r.grouping.padEnd(13)} ${r.bitsPerValue.toFixed(3)}  (${r.groups} models)`);
    return 0;
  } finally {
    model.dispose();
  }
}

export const codecCommand: Command = {
  name: 'codec',
  positionals: 'eval|observe|bench',
  summary: 'KV codecs: `codec eval` (size, perplexity change, KL, top-1 of every codec and level), `codec observe` (CacheGen\'s observations).',
  description: 'eval: each context of a versioned set (default datasets/stories260k-codec/v1.json) is prefilled, its KV\n' +
    'encoded and decoded by every codec at every level, and the continuation run on the decoded KV vs the exact KV.\n' +
    'observe: raw vs anchor-delta value distributions, per-layer-group sensitivity, entropy by grouping (tidy rows).',
  options: {
    model: { type: 'string', value: 'NAME|PATH', help: 'model (default stories260K)' },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    dataset: { type: 'string', value: 'FILE', help: 'contexts (JSON, see datasets/stories260k-codec/CARD.md)' },
    contexts: { type: 'string', value: 'N', help: 'use the first N contexts only' },
    codecs: { type: 'string', value: 'NAME[,NAME...]', help: 'eval: codecs to run (default: every registered codec)' },
    device: { type: 'string', value: 'cpu|cuda[:N]', help: 'device for the model (default cpu)' },
    'no-profiles': { type: 'boolean', help: 'eval: skip the cachegen rows that use a per-model profile' },
    json: { type: 'boolean', help: 'print JSON (eval: {"rows": [...], "profiles": [...]}; observe: the four row tables; bench: benchmark JSON)' },
    tokens: { type: 'string', value: 'N[,N...]', help: 'bench: chunk lengths (default 256,1024,4096)' },
    reps: { type: 'string', value: 'N', help: 'bench: timed repetitions (default 10)' },
    level: { type: 'string', value: 'NAME', help: 'bench: cachegen level(s), comma-separated (default: the default level)' },
    out: { type: 'string', value: 'FILE', help: 'bench: also write the JSON here' },
    calibrate: { type: 'string', value: 'KL|released', help: 'bench (with --quality): also calibrate the default level for this model to a KL budget, or to what cachegen-released costs, on other tokens (row level default-calibrated)' },
    'save-kv': { type: 'string', value: 'FILE', help: 'bench: write the longest chunk\'s KV as raw fp16 [layers][K|V][tokens][heads][dim] (to time another codec on the same bytes)' },
    quality: { type: 'string', value: 'N', help: 'bench: N continuation tokens on each level\'s and baseline\'s decoded KV of the longest chunk: KL and top-1 vs exact KV' },
  },
  async run(values, pos, io) {
    if (pos[0] === 'eval') return codecEvalCommand(values, io);
    if (pos[0] === 'observe') return codecObserveCommand(values, io);
    if (pos[0] === 'bench') return codecBenchCommand(values, io);
    throw new ArgumentError(`kvlab codec: unknown subcommand '${pos[0] ?? ''}' (known: eval, observe, bench)`);
  },
};
