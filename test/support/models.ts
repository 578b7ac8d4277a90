/**
 * Paths of the shared test models: ../shared/models beside the repository, or the folder in
 * KVLAB_TEST_MODELS (a GPU host gets a copy carried along, since ../shared does not travel).
 */
import { fileURLToPath } from 'node:url';

export const SHARED_MODELS = process.env.KVLAB_TEST_MODELS
  ? process.env.KVLAB_TEST_MODELS.replace(/\/?$/, '/')
  : fileURLToPath(new URL('../../../shared/models/', import.meta.url));
export const STORIES_BIN = SHARED_MODELS + 'stories260K.bin';
export const STORIES_GGUF = SHARED_MODELS + 'stories260K.gguf';
export const STORIES_TOK = SHARED_MODELS + 'tok512.bin';
