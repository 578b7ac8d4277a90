/** Paths of the shared test models (../shared/models beside the repository). */
import { fileURLToPath } from 'node:url';

export const SHARED_MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
export const STORIES_BIN = SHARED_MODELS + 'stories260K.bin';
export const STORIES_GGUF = SHARED_MODELS + 'stories260K.gguf';
export const STORIES_TOK = SHARED_MODELS + 'tok512.bin';
