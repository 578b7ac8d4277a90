/**
 * Makes datasets/stories260k-blend/v1.json: multi-chunk contexts for `kvlab blend eval` on stories260K.
 * Each context is a story the model itself samples from BOS (temperature 0.9, top-p 0.95, seed
 * 1000 + i, no stop token), cut into 4-6 chunks of 64-96 tokens (at most 440 tokens in all) and
 * followed by a 64-token continuation, so BOS + context + continuation fits the model's 512 positions.
 *
 *   node --import tsx datasets/stories260k-blend/make.ts ../shared/models/stories260K.bin
 */
import { writeFileSync } from 'node:fs';
import { generate, seededUniform } from '../../src/model/generate.js';
import { loadLlama2c } from '../../src/model/llama2c.js';
import { Model } from '../../src/model/model.js';

const VERSION = 1;
const CONTEXTS = 8;
const CONTINUATION = 64;
const MAX_CONTEXT = 440;

const path = process.argv[2] ?? new URL('../../../shared/models/stories260K.bin', import.meta.url).pathname;
const model = Model.fromWeights(await loadLlama2c(path));
const contexts = [];
for (let i = 0; i < CONTEXTS; i++) {
  const r = generate(model, [model.config.bosId], { maxTokens: 510, temperature: 0.9, topP: 0.95, seed: 1000 + i, stopTokens: [] });
  r.cache.dispose();
  const u = seededUniform(2000 + i);
  const count = 4 + Math.floor(u() * 3);
  const sizes: number[] = [];
  for (let c = 0; c < count; c++) sizes.push(64 + Math.floor(u() * 33));
  while (sizes.reduce((a, b) => a + b, 0) > MAX_CONTEXT) sizes[sizes.indexOf(Math.max(...sizes))]! -= 1;
  const chunks: number[][] = [];
  let at = 0;
  for (const s of sizes) { chunks.push(r.tokens.slice(at, at + s)); at += s; }
  contexts.push({ id: `s${i}`, chunks, continuation: r.tokens.slice(at, at + CONTINUATION) });
}
const out = {
  name: 'stories260k-blend', version: VERSION, model: 'stories260K (llama2.c checkpoint, ../shared/models)',
  command: 'node --import tsx datasets/stories260k-blend/make.ts ../shared/models/stories260K.bin',
  prefix: [model.config.bosId], contexts,
};
writeFileSync(new URL('./v1.json', import.meta.url), JSON.stringify(out) + '\n');
console.log(`wrote ${contexts.length} contexts: ${contexts.map((c) => c.chunks.map((x) => x.length).join('+')).join(', ')}`);
