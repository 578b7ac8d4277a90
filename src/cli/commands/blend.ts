import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { blendEval, DEFAULT_RATIOS, type BlendContext } from '../../cacheblend/eval.js';
import { loadModel } from '../../model/load.js';
import { PACKAGE_ROOT } from '../../runtime/addon.js';
import { ArgumentError, FormatError } from '../../runtime/errors.js';
import { num, str, type Command } from '../command.js';
import { modelSearchPath } from '../search-path.js';

interface Dataset { name: string; version: number; prefix: number[]; contexts: BlendContext[] }

function readDataset(path: string): Dataset {
  let d: unknown;
  try {
    d = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`${path}: ${(e as Error).message}`);
  }
  const x = d as Partial<Dataset>;
  const ids = (a: unknown) => Array.isArray(a) && a.every((t) => Number.isInteger(t));
  if (!ids(x.prefix) || !Array.isArray(x.contexts) || x.contexts.length === 0)
    throw new FormatError(`${path}: expected {prefix: number[], contexts: [...]}`);
  x.contexts.forEach((c, i) => {
    if (!Array.isArray(c?.chunks) || !c.chunks.every(ids) || !ids(c.continuation) || c.continuation.length < 2)
      throw new FormatError(`${path}: context ${i} needs chunks: number[][] and a continuation of >= 2 tokens`);
  });
  return x as Dataset;
}

function fmt(x: number, d = 4): string {
  return Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(d) : x.toExponential(2);
}

export const blendCommand: Command = {
  name: 'blend',
  positionals: 'eval',
  summary: 'CacheBlend evaluation: every reuse method at every recompute ratio vs full prefill (KL, perplexity, top-1).',
  description: 'Contexts come from a versioned dataset (default datasets/stories260k-blend/v1.json): chunks\n' +
    'prefilled on their own after the prefix, fused with each method, the continuation as the query.',
  options: {
    model: { type: 'string', value: 'NAME|PATH', help: 'model', default: 'stories260K' },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    dataset: { type: 'string', value: 'FILE', help: 'contexts (JSON, see datasets/stories260k-blend/CARD.md)' },
    ratios: { type: 'string', value: 'R[,R...]', help: 'recompute ratios in [0, 1]', default: DEFAULT_RATIOS.join(',') },
    contexts: { type: 'string', value: 'N', help: 'use the first N contexts only' },
    device: { type: 'string', value: 'cpu|cuda[:N]', help: 'device', default: 'cpu' },
    json: { type: 'boolean', help: 'print {"rows": [...]} as JSON' },
  },
  async run(values, pos, io) {
    if (pos[0] !== 'eval') throw new ArgumentError(`kvlab blend: unknown subcommand '${pos[0] ?? ''}' (known: eval)`);
    const path = str(values, 'dataset') ?? join(PACKAGE_ROOT, 'datasets', 'stories260k-blend', 'v1.json');
    const ds = readDataset(path);
    const ratios = str(values, 'ratios')!.split(',').map(Number);
    for (const r of ratios) if (!(r >= 0 && r <= 1)) throw new ArgumentError(`--ratios: ${r} is outside [0, 1]`);
    const limit = num(values, 'contexts', 'blend');
    const contexts = limit ? ds.contexts.slice(0, limit) : ds.contexts;
    const { model } = await loadModel(str(values, 'model')!, {
      searchPath: modelSearchPath(str(values, 'models'), io), device: str(values, 'device') as never,
    });
    try {
      const rows = blendEval(model, ds.prefix, contexts, {
        ratios,
        onProgress: values.json ? undefined : (d, t) => io.err(`  context ${d}/${t}`),
      });
      if (values.json) {
        io.out(JSON.stringify({ dataset: `${ds.name} v${ds.version}`, model: str(values, 'model'), device: model.device.toString(), rows }, null, 1));
      } else {
        io.out(`${ds.name} v${ds.version}, ${contexts.length} contexts, ${model.device}`);
        io.out('method               ratio  compute  KL        ppl%     top1   attnDev');
        for (const r of rows)
          io.out(`${r.method.padEnd(20)} ${r.ratio.toFixed(3)}  ${r.computeFraction.toFixed(3)}    ${fmt(r.kl).padEnd(8)}  ${r.pplDeltaPct.toFixed(2).padStart(6)}  ${r.top1.toFixed(3)}  ${r.attnDev.toFixed(4)}`);
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};
