/**
 * Finding model files: an explicit path, or a short name looked up in an ordered list of folders
 * (the CLI builds it: --models, KVLAB_MODELS, the repo's models/, ../shared/models). A name is
 * `<dir>/<name>/` (a Hugging Face folder with config.json), `<dir>/<name>.gguf` or `<dir>/<name>.bin`.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { NotFoundError } from '../runtime/errors.js';

export type ModelFormat = 'gguf' | 'llama2c' | 'hf';

export interface ModelLocation {
  path: string;
  format: ModelFormat;
}

function formatOf(path: string): ModelFormat | null {
  if (!existsSync(path)) return null;
  if (statSync(path).isDirectory()) return existsSync(join(path, 'config.json')) ? 'hf' : null;
  if (path.endsWith('.gguf')) return 'gguf';
  if (path.endsWith('.bin')) return 'llama2c';
  return null;
}

/** Resolves a path or a name; throws NotFoundError listing every place tried. */
export function locateModel(nameOrPath: string, searchPath: readonly string[]): ModelLocation {
  const tried: string[] = [];
  const direct = resolve(nameOrPath);
  const looksLikePath = nameOrPath.includes('/') || nameOrPath.endsWith('.gguf') || nameOrPath.endsWith('.bin');
  if (looksLikePath || existsSync(direct)) {
    const f = formatOf(direct);
    if (f) return { path: direct, format: f };
    tried.push(direct);
    if (looksLikePath) throw new NotFoundError(`model ${nameOrPath}: ${direct} is not a .gguf file, a llama2.c .bin file or a folder with config.json`);
  }
  for (const dir of searchPath) {
    for (const candidate of [join(dir, nameOrPath), join(dir, `${nameOrPath}.gguf`), join(dir, `${nameOrPath}.bin`)]) {
      const f = formatOf(candidate);
      if (f) return { path: candidate, format: f };
    }
    tried.push(dir);
  }
  throw new NotFoundError(`model '${nameOrPath}' not found; looked in:\n${tried.map((t) => '  ' + t).join('\n') || '  (no folders)'}`);
}

/** The llama2.c tokenizer that belongs beside a checkpoint: tokenizer.bin or tok<vocab>.bin. */
export function llama2cTokenizerPath(checkpoint: string, vocabSize: number): string | null {
  const dir = dirname(checkpoint);
  for (const name of ['tokenizer.bin', `tok${vocabSize}.bin`, basename(checkpoint, '.bin') + '.tokenizer.bin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}
