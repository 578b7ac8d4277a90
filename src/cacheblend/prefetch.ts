/**
 * Layers the pipelined fusor requests ahead of the one being recomputed, unless a request says
 * otherwise. On an H100 with 7B KV from pinned host memory, cacheblend-15%'s TTFT was 34.5 / 34.4 /
 * 28.9 / 37.8 ms at 1 / 2 / 4 / 32 (session 3's results/bench-blend-mistral7b-h100.json, in git
 * history): deep enough that the copy stream never runs dry, shallow enough that copies do not crowd
 * the compute's memory traffic. Its own module so the report's figures can name it without the engine.
 */
export const DEFAULT_PREFETCH = 4;
