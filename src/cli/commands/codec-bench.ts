/**
 * `kvlab codec bench` (= `kvlab bench codec`): CacheGen encode/decode throughput, benchmark JSON
 * (src/cachegen/bench.ts). The model defaults to the random-initialised Mistral-7B shape on the
 * device (no weights needed); `--model NAME` uses a model file instead (e.g. stories260K on a CPU).
 */
import { writeFileSync } from 'node:fs';
import { codecBench } from '../../cachegen/bench.js';
import { loadModel } from '../../model/load.js';
import { Model } from '../../model/model.js';
import { PRESETS } from '../../model/presets.js';
import { resolveDevice } from '../../runtime/device.js';
import { ArgumentError } from '../../runtime/errors.js';
import { benchTable } from '../bench-json.js';
import { num, str, type CliIO, type Values } from '../command.js';
import { modelSearchPath } from '../search-path.js';

function calibrateBudget(v: string | undefined): number | 'released' | undefined {
  if (v === undefined || v === 'released') return v;
  const kl = Number(v);
  if (!(kl > 0)) throw new ArgumentError(`kvlab codec bench: --calibrate must be a positive KL (nats) or 'released', got ${JSON.stringify(v)}`);
  return kl;
}

export async function codecBenchCommand(values: Values, io: CliIO): Promise<number> {
  const device = resolveDevice(str(values, 'device') ?? 'cuda');
  const name = str(values, 'model') ?? 'mistral-7b';
  const preset = PRESETS[name];
  const model = preset ? Model.random(preset, { device, dtype: device.isCuda ? 'f16' : 'f32', seed: 0 })
    : (await loadModel(name, { searchPath: modelSearchPath(str(values, 'models'), io), device })).model;
  try {
    const tokens = (str(values, 'tokens') ?? '256,1024,4096').split(',').map(Number);
    if (tokens.some((t) => !Number.isInteger(t) || t < 1)) throw new ArgumentError(`kvlab codec bench: --tokens must be positive integers`);
    const argv = ['codec', 'bench', ...process.argv.slice(4)];
    const j = codecBench(model, {
      tokens, reps: num(values, 'reps', 'codec bench') ?? 10, level: str(values, 'level'), argv, saveKv: str(values, 'save-kv'),
      quality: num(values, 'quality', 'codec bench') ?? 0, calibrate: calibrateBudget(str(values, 'calibrate')),
      onProgress: values.json ? undefined : (m) => io.err(`  ${m}`),
    });
    const text = JSON.stringify(j, null, 1);
    const out = str(values, 'out');
    if (out) writeFileSync(out, text + '\n');
    io.out(values.json ? text : `${j.card}\n${benchTable(j.rows)}`);
    return 0;
  } finally {
    model.dispose();
  }
}
