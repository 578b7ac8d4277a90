/**
 * `loadModel(nameOrPath)`: find the files, read weights and tokenizer in whichever format they come
 * (GGUF, llama2.c checkpoint + tokenizer, Hugging Face folder), and build the Model on a device.
 */
import { loadGguf } from './gguf.js';
import { loadHfFolder } from './hf.js';
import { Llama2cTokenizer, loadLlama2c } from './llama2c.js';
import { llama2cTokenizerPath, locateModel, type ModelFormat } from './locate.js';
import { Model, type ModelOptions } from './model.js';
import type { Tokenizer } from './tokenizer.js';
import type { ModelWeights } from './weights.js';


export interface LoadOptions extends ModelOptions {
  /** Folders to look names up in, in order. */
  searchPath?: readonly string[];
  /** An explicit tokenizer file (llama2.c format) overriding the one found beside the model. */
  tokenizer?: string;
}

export interface LoadedModel {
  model: Model;
  tokenizer: Tokenizer | null;
  path: string;
  format: ModelFormat;
}

/** Reads a model's weights and tokenizer without placing them on a device. */
export async function readModelFiles(nameOrPath: string, options: LoadOptions = {}):
  Promise<{ weights: ModelWeights; tokenizer: Tokenizer | null; path: string; format: ModelFormat }> {
  const loc = locateModel(nameOrPath, options.searchPath ?? []);
  let weights: ModelWeights;
  let tokenizer: Tokenizer | null = null;
  if (loc.format === 'gguf') {
    const g = await loadGguf(loc.path);
    weights = g.weights;
    tokenizer = g.tokenizer;
  } else if (loc.format === 'llama2c') {
    weights = await loadLlama2c(loc.path);
    const tp = llama2cTokenizerPath(loc.path, weights.config.vocabSize);
    if (tp) tokenizer = await Llama2cTokenizer.load(tp, { vocabSize: weights.config.vocabSize });
  } else {
    const hf = await loadHfFolder(loc.path);
    weights = hf.weights;
    tokenizer = hf.tokenizer;
  }
  if (options.tokenizer) tokenizer = await Llama2cTokenizer.load(options.tokenizer, { vocabSize: weights.config.vocabSize });
  return { weights, tokenizer, path: loc.path, format: loc.format };
}

export async function loadModel(nameOrPath: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const files = await readModelFiles(nameOrPath, options);
  const model = Model.fromWeights(files.weights, options);
  return { model, tokenizer: files.tokenizer, path: files.path, format: files.format };
}
