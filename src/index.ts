/**
 * kvlab: KV-cache compression and reuse for LLM inference.
 * The public API; everything a researcher imports comes from here.
 */
export * from './runtime/index.js';
export * from './model/index.js';
export * as cacheblend from './cacheblend/index.js';
export * as cachegen from './cachegen/index.js';
export * as evaluation from './eval/index.js';
export * as figures from './eval/figures/index.js';
export * as report from './eval/report/index.js';
export * as qa from './eval/qa/index.js';
export * as store from './store/index.js';
export * as stream from './stream/index.js';
export { VERSION } from './version.js';
