// kvlab vs Hugging Face transformers: folders written by test/gpu/hf_parity.py (random
// LlamaForCausalLM with GQA and with llama3 RoPE scaling, Qwen2ForCausalLM with QKV bias, f32, saved
// with save_pretrained) load unchanged; logits within 1e-4 relative on the CPU and on CUDA.
import { existsSync, readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { loadModel } from '../../src/model/load.js';
import { gpuSuite } from '../support/gpu.js';
import { relErr } from '../support/reference.js';

const test = gpuSuite('gpu hf parity');
const DIR = process.env.KVLAB_HF_DIR;


test('transformers-saved models load into kvlab and match its logits (<= 1e-4, f32)', async () => {
  if (!DIR || !existsSync(DIR)) {
    console.log('  KVLAB_HF_DIR not set or missing: run test/gpu/hf_parity.py first');
    return;
  }
  for (const name of ['llama-gqa', 'llama3-scaled', 'qwen2-bias']) {
    const exp = JSON.parse(readFileSync(`${DIR}/${name}/expected.json`, 'utf8')) as { tokens: number[]; rows: number[]; logits: number[][] };
    for (const device of ['cpu', 'cuda:0'] as const) {
      const { model } = await loadModel(`${DIR}/${name}`, { device, dtype: 'f32' });
      const r = model.prefill(exp.tokens, { logits: 'all' });
      const V = model.config.vocabSize;
      exp.rows.forEach((row, k) => {
        const e = relErr(r.logits.subarray(row * V, (row + 1) * V), exp.logits[k]!);
        console.log(`  ${name} ${device} row ${row}: relative error ${e.toExponential(2)}`);
        assert.ok(e <= 1e-4, `${name} on ${device}, row ${row}: ${e}`);
      });
      r.cache.dispose();
      model.dispose();
    }
  }
});

test.run();
