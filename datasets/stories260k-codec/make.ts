/**
 * Makes datasets/stories260k-codec/v1.json: contexts for `kvlab codec eval` on stories260K. Each is
 * a story the model itself samples from BOS (temperature 0.9, top-p 0.95, seed 3000 + i, no stop
 * token), 511 sampled tokens: BOS + the first `contextLength - 1` of them are the context whose KV
 * is encoded, the next 64 are the continuation scored on decoded vs exact KV. Context lengths vary
 * (448, 383 or 257, none a multiple of the codec's 10-token groups) and are drawn from
 * seed 4000 + i, so BOS + context + continuation <= 512, the model's context. Apart from them,
 * `profileContexts`: 8 more stories (seed 5000 + i, BOS + 447 tokens) that per-model codec profiles
 * are built from, so a profile never sees the contexts it is evaluated on.
 *
 *   node --import tsx datasets/stories260k-codec/make.ts ../shared/models/stories260K.bin
 */
import { writeFileSync } from 'node:fs';
import { generate, seededUniform } from '../../src/model/generate.js';
import { loadLlama2c } from '../../src/model/llama2c.js';
import { Model } from '../../src/model/model.js';

const VERSION = 1;
const CONTEXTS = 8;
const CONTINUATION = 64;
const MAX_CONTEXT = 448;
const LENGTHS = [448, 448, 448, 383, 257];  // 448 three times as likely as each other length

const path = process.argv[2] ?? new URL('../../../shared/models/stories260K.bin', import.meta.url).pathname;
const model = Model.fromWeights(await loadLlama2c(path));
const bos = model.config.bosId;
const contexts = [];
for (let i = 0; i < CONTEXTS; i++) {
  const r = generate(model, [bos], { maxTokens: 511, temperature: 0.9, topP: 0.95, seed: 3000 + i, stopTokens: [] });
  r.cache.dispose();
  const n = LENGTHS[Math.floor(seededUniform(4000 + i)() * LENGTHS.length)]!;
  const context = [bos, ...r.tokens.slice(0, n - 1)];
  contexts.push({ id: `c${i}`, context, continuation: r.tokens.slice(n - 1, n - 1 + CONTINUATION) });
}
const PROFILE_CONTEXTS = 8;
const profileContexts = [];
for (let i = 0; i < PROFILE_CONTEXTS; i++) {
  const r = generate(model, [bos], { maxTokens: MAX_CONTEXT - 1, temperature: 0.9, topP: 0.95, seed: 5000 + i, stopTokens: [] });
  r.cache.dispose();
  profileContexts.push({ id: `p${i}`, context: [bos, ...r.tokens] });
}
const out = {
  name: 'stories260k-codec', version: VERSION, model: 'stories260K (llama2.c checkpoint, ../shared/models)',
  command: 'node --import tsx datasets/stories260k-codec/make.ts ../shared/models/stories260K.bin',
  maxContext: MAX_CONTEXT, continuationLength: CONTINUATION, contexts, profileContexts,
};
writeFileSync(new URL('./v1.json', import.meta.url), JSON.stringify(out) + '\n');
console.log(`wrote ${contexts.length} contexts: ${contexts.map((c) => `${c.context.length}+${c.continuation.length}`).join(', ')}`);
