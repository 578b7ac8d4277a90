import { generate } from '../../model/generate.js';
import { loadModel } from '../../model/load.js';
import { ArgumentError } from '../../runtime/errors.js';
import { num, str, type Command } from '../command.js';
import { modelSearchPath } from '../search-path.js';

export const generateCommand: Command = {
  name: 'generate',
  summary: 'Generate text with a Llama-family model (greedy, temperature, top-p), streaming tokens as they come.',
  options: {
    model: { type: 'string', value: 'NAME|PATH', help: 'model name (looked up in the search path) or path', default: 'stories260K' },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    tokenizer: { type: 'string', value: 'PATH', help: 'llama2.c tokenizer file overriding the one beside the model' },
    prompt: { type: 'string', value: 'TEXT', help: 'the prompt', default: '' },
    'max-tokens': { type: 'string', value: 'N', help: 'tokens to generate', default: '256' },
    temperature: { type: 'string', value: 'T', help: 'sampling temperature; 0 = greedy', default: '0' },
    'top-p': { type: 'string', value: 'P', help: 'nucleus sampling mass in (0, 1]', default: '1' },
    seed: { type: 'string', value: 'S', help: 'seed of the sampler', default: '0' },
    device: { type: 'string', value: 'cpu|cuda[:N]|auto', help: 'where to run', default: 'cpu' },
    dtype: { type: 'string', value: 'f32|f16|bf16', help: 'weights/activations dtype (CUDA for f16/bf16)', default: 'f32' },
    json: { type: 'boolean', help: 'print one JSON object (tokens, text, timings) instead of streaming text' },
  },
  async run(values, _pos, io) {
    const maxTokens = num(values, 'max-tokens', 'generate')!;
    const { model, tokenizer, path } = await loadModel(str(values, 'model')!, {
      searchPath: modelSearchPath(str(values, 'models'), io),
      tokenizer: str(values, 'tokenizer'),
      device: str(values, 'device') as never,
      dtype: str(values, 'dtype') as never,
    });
    try {
      if (!tokenizer) throw new ArgumentError(`no tokenizer found for ${path}; pass --tokenizer`);
      const prompt = tokenizer.encode(str(values, 'prompt')!, { bos: true });
      let printed = tokenizer.decode(prompt);
      if (!values.json) io.write(printed);
      const sofar = [...prompt];
      const r = generate(model, prompt, {
        maxTokens,
        temperature: num(values, 'temperature', 'generate'),
        topP: num(values, 'top-p', 'generate'),
        seed: num(values, 'seed', 'generate'),
        onToken: values.json ? undefined : (t) => {
          // Decode the whole text so far and print what is new (pieces can merge across tokens).
          sofar.push(t);
          const now = tokenizer.decode(sofar);
          io.write(now.slice(printed.length));
          printed = now;
        },
      });
      const text = tokenizer.decode([...prompt, ...r.tokens]);
      const tokS = r.tokens.length > 1 ? ((r.tokens.length - 1) / r.decodeMs) * 1000 : 0;
      if (values.json) {
        io.out(JSON.stringify({ model: path, device: model.device.toString(), dtype: model.dtype, promptTokens: prompt,
          tokens: r.tokens, text, stopReason: r.stopReason, prefillMs: r.prefillMs, decodeMs: r.decodeMs, decodeTokensPerS: tokS }));
      } else {
        io.out(text.slice(printed.length));
        io.err(`[${r.tokens.length} tokens, ${r.stopReason}; prefill ${r.prefillMs.toFixed(1)} ms, decode ${tokS.toFixed(1)} tok/s on ${model.device}]`);
      }
      r.cache.dispose();
      return 0;
    } finally {
      model.dispose();
    }
  },
};
