/**
 * kvlab: KV-cache compression and reuse for LLM inference.
 * The public API; everything a researcher imports comes from here.
 */
export * from './runtime/index.js';
export * from './model/index.js';
export * as cacheblend from './cacheblend/index.js';
export { VERSION } from './version.js';
