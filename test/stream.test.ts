// CacheGen's adaptive streamer (src/stream): traces, levels from codec-eval rows, the level choice and
// text fallback, the simulator against hand-computed TTFTs, loopback TCP against the simulator on short
// traces, and `kvlab stream eval` on the fixture levels (test input, not results).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import type { CliIO } from '../src/cli/command.js';
import { main } from '../src/cli/main.js';
import { ArgumentError, FormatError } from '../src/runtime/errors.js';
import {
  choose, constantTrace, fp16KvBytes, levelsFromCodecEval, loopbackStream, parseTrace, simulateStream, stepTrace, streamEval,
  transferSeconds, uniformTraces, type StreamLevel, type StreamSetup,
} from '../src/stream/index.js';

const FIXTURE = new URL('./fixtures/stream-levels.json', import.meta.url).pathname;
const MB = 1e6;
const close = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

function level(name: string, mb: number, quality: number): StreamLevel {
  return { name, ratioVsFp16: 100 / mb, bytesPerChunk: mb * MB, quality };
}

/** 3 chunks; levels of 4, 2 and 1 MB; text 0.1 s per chunk; decode 2 ms; SLO 0.1 s. */
const SETUP: StreamSetup = {
  chunks: 3, levels: [level('a', 4, 0.99), level('b', 2, 0.95), level('c', 1, 0.9)], textBytesPerChunk: 0, recomputeS: 0.1,
  decodeS: [0.002, 0.002, 0.002], sloS: 0.1, initialGbps: 1,
};

test('traces: seeded uniform per-chunk traces in [0.1, 10] Gbps; timed transfers integrate over segments', () => {
  const a = uniformTraces(100, 6, { seed: 7 }), b = uniformTraces(100, 6, { seed: 7 });
  assert.equal(a, b);
  const all = a.flatMap((t) => (t.kind === 'per-chunk' ? [...t.gbps] : []));
  assert.is(all.length, 600);
  assert.ok(all.every((g) => g >= 0.1 && g <= 10));
  assert.ok(Math.abs(all.reduce((s, g) => s + g, 0) / 600 - 5.05) < 0.4, 'mean near 5.05 Gbps');
  assert.is.not(uniformTraces(1, 6, { seed: 8 })[0]!.name, a[0]!.name);
  // 1 Gbps until 0.1 s then 4 Gbps: 25 MB from t=0.05 -> 0.05 s moves 6.25 MB, the rest 18.75 MB at 4 Gbps = 0.0375 s.
  assert.ok(close(transferSeconds(stepTrace(1, 4, 0.1), 0, 0.05, 25 * MB), 0.05 + 0.0375));
  assert.ok(close(transferSeconds(constantTrace(8), 3, 1.0, MB), 0.001));
  const f = parseTrace('# t gbps\n0 2\n0.5 1\n', 'f');
  assert.ok(close(transferSeconds(f, 0, 0.25, 125 * MB), 0.25 + 0.5));
  assert.equal(parseTrace('{"gbps": [1, 2]}', 'j'), { kind: 'per-chunk', name: 'j', gbps: [1, 2] });
  const seg = parseTrace('{"segments": [{"durationS": 1, "gbps": 3}, {"durationS": 2, "gbps": 1}]}', 's');
  assert.equal(seg.kind === 'timed' && seg.segments, [{ untilS: 1, gbps: 3 }, { untilS: Infinity, gbps: 1 }]);
  for (const bad of ['1 2', '0 -1', '{"gbps": [0]}', '{}', '0 1\n0 2'])
    assert.throws(() => parseTrace(bad, 'bad'), (e: unknown) => e instanceof FormatError || e instanceof ArgumentError, bad);
});

test('levels: codec-eval rows of one codec, averaged per level, best first, bytes = fp16 bytes / ratio', () => {
  const fp = fp16KvBytes({ nLayers: 32, nKvHeads: 8, headDim: 128 }, 1500);
  assert.is(fp, 196_608_000);
  const rows = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const lv = levelsFromCodecEval(rows, { fp16ChunkBytes: fp });
  assert.equal(lv.map((l) => l.name), ['high', 'mid', 'low']);
  assert.is(lv[1]!.bytesPerChunk, Math.round(fp / 9));
  assert.is(lv[2]!.quality, 0.94);
  assert.is(levelsFromCodecEval(rows, { fp16ChunkBytes: fp, metric: 'kl' })[0]!.quality, 0.01);
  const two = levelsFromCodecEval([{ codec: 'cachegen', level: 'x', ratioVsFp16: 4, top1: 0.9 }, { codec: 'cachegen', level: 'x', ratioVsFp16: 6, top1: 0.8 }], { fp16ChunkBytes: 100 });
  assert.ok(close(two[0]!.ratioVsFp16, 5) && close(two[0]!.quality, 0.85) && two[0]!.bytesPerChunk === 20);
  assert.throws(() => levelsFromCodecEval({ rows: [] }, { fp16ChunkBytes: 1 }), (e: unknown) => e instanceof FormatError);
  assert.throws(() => levelsFromCodecEval([{ codec: 'cachegen', level: 'x', ratioVsFp16: 0, top1: 1 }], { fp16ChunkBytes: 1 }), (e: unknown) => e instanceof FormatError);
});

test('choice: the best level whose remaining bytes fit the time left; text when no level fits and text is faster', () => {
  // 3 chunks left at 1 Gbps (est): a 4 MB -> 96 ms + 2 ms decode = 98 ms <= 100 ms: fits.
  assert.is(choose(SETUP, { kind: 'adaptive' }, { chunk: 0, nowS: 0, gpuFreeS: 0, estBps: 1e9 }), 0);
  // At 10 ms in, a no longer fits (108 ms); b does (10 + 48 + 2 = 60 ms).
  assert.is(choose(SETUP, { kind: 'adaptive' }, { chunk: 0, nowS: 0.01, gpuFreeS: 0, estBps: 1e9 }), 1);
  // At 0.2 Gbps nothing fits: c takes 3 x 40 ms + 2 = 122 ms; text 3 x 0.1 s = 300 ms is slower -> c.
  assert.is(choose(SETUP, { kind: 'adaptive' }, { chunk: 0, nowS: 0, gpuFreeS: 0, estBps: 0.2e9 }), 2);
  // At 0.02 Gbps c takes 1.2 s; text 0.3 s is faster -> text.
  assert.is(choose(SETUP, { kind: 'adaptive' }, { chunk: 0, nowS: 0, gpuFreeS: 0, estBps: 0.02e9 }), 'text');
  // Last chunk, GPU busy until 0.5 s: text = 0.5 + 0.1 = 0.6 s vs c at 0.02 Gbps 0.4 + 0.002 s -> c.
  assert.is(choose(SETUP, { kind: 'adaptive' }, { chunk: 2, nowS: 0, gpuFreeS: 0.5, estBps: 0.02e9 }), 2);
  assert.is(choose(SETUP, { kind: 'fixed', level: 1 }, { chunk: 0, nowS: 9, gpuFreeS: 0, estBps: 1 }), 1);
  assert.is(choose(SETUP, { kind: 'text' }, { chunk: 0, nowS: 0, gpuFreeS: 0, estBps: 1e12 }), 'text');
});

test('simulator: TTFT by hand, decode overlapping the next transfer; adaptation follows the measured throughput', () => {
  // Level a at 8 Gbps: transfers end at 4, 8, 12 ms; decodes (2 ms) end at 6, 10, 14 ms.
  const r = simulateStream(SETUP, constantTrace(8), { kind: 'fixed', level: 0 });
  assert.ok(close(r.ttftS, 0.014));
  assert.equal(r.arrivedS.map((t) => +t.toFixed(9)), [0.004, 0.008, 0.012]);
  assert.is(r.violated, false);
  assert.ok(close(r.quality, 0.99));
  // Decode slower than transfer: the GPU is the bottleneck (3 x 10 ms after the first arrival).
  const slow = simulateStream({ ...SETUP, decodeS: [0.01, 0.01, 0.01] }, constantTrace(8), { kind: 'fixed', level: 0 });
  assert.ok(close(slow.ttftS, 0.004 + 0.03));
  // Text only: 3 x 0.1 s of recompute back to back.
  const t = simulateStream(SETUP, constantTrace(8), { kind: 'text' });
  assert.ok(close(t.ttftS, 0.3) && t.violated && t.quality === 1);
  // Per-chunk 1, 0.5, 4 Gbps with the 1 Gbps prior:
  // chunk 0: a fits (98 ms) -> 32 ms, measured 1 Gbps. chunk 1 at 32 ms: a 32+64+2 = 98 fits -> a at 0.5 Gbps: 64 ms,
  // arrives 96 ms, measured 0.5 Gbps. chunk 2 at 96 ms: a 96+64+2 no, b +32 no, c +16+2 = 114 no; text 96 + 0.1 = 196 ms
  // (GPU free at 98 ms: max(96, 98) + 100 = 198 ms) vs c 114 ms -> c at 4 Gbps: 2 ms, arrives 98, decoded 100 ms.
  const ad = simulateStream(SETUP, { kind: 'per-chunk', name: 'h', gbps: [1, 0.5, 4] }, { kind: 'adaptive' });
  assert.equal(ad.choices, [0, 0, 2]);
  assert.ok(close(ad.ttftS, 0.1), String(ad.ttftS));
  assert.is(ad.violated, false);
  assert.ok(close(ad.quality, (0.99 + 0.99 + 0.9) / 3));
  const rows = streamEval(SETUP, uniformTraces(50, 3, { seed: 3 }));
  assert.equal(rows.map((x) => x.policy), ['adaptive', 'level-a', 'level-b', 'level-c', 'text']);
  assert.is(rows[4]!.sloViolationRate, 1);
  assert.ok(rows[1]!.meanQuality > rows[3]!.meanQuality);
});

test('loopback TCP: median TTFT within 10% of the simulator on short traces', async () => {
  // 3 chunks of 12/6/3 MB (scaled by 0.01 on the wire), traces chosen so TTFT is a few hundred ms.
  const setup: StreamSetup = { ...SETUP, levels: [level('a', 12, 0.99), level('b', 6, 0.95), level('c', 3, 0.9)], sloS: 0.3 };
  const traces = [{ kind: 'per-chunk' as const, name: 'p', gbps: [0.8, 0.4, 1.5] }, stepTrace(1.2, 0.5, 0.1), constantTrace(0.6)];
  for (const policy of [{ kind: 'fixed' as const, level: 1 }, { kind: 'adaptive' as const }]) {
    const sim: number[] = [], real: number[] = [];
    for (const t of traces) {
      sim.push(simulateStream(setup, t, policy).ttftS);
      real.push((await loopbackStream(setup, t, policy)).ttftS);
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
    const diff = Math.abs(med(real) - med(sim)) / med(real);
    assert.ok(diff <= 0.1, `${policy.kind}: sim ${sim.map((x) => x.toFixed(3))} vs loopback ${real.map((x) => x.toFixed(3))}`);
  }
});

function captureIO(): CliIO & { text: () => string; errText: () => string } {
  let out = '', err = '';
  return { out: (t) => { out += t + '\n'; }, write: (t) => { out += t; }, err: (t) => { err += t + '\n'; }, env: {}, cwd: process.cwd(), text: () => out, errText: () => err };
}

test('kvlab stream eval --json: the rows per policy on the fixture levels; --levels is required', async () => {
  const io = captureIO();
  assert.is(await main(['stream', 'eval', '--levels', FIXTURE, '--traces', '20', '--json'], io), 0);
  const j = JSON.parse(io.text());
  assert.equal(j.rows.map((r: { policy: string }) => r.policy), ['adaptive', 'level-high', 'level-mid', 'level-low', 'text']);
  for (const r of j.rows) for (const k of ['sloViolationRate', 'meanQuality', 'medianTtftS']) assert.type(r[k], 'number');
  assert.is(j.experiment.fp16ChunkBytes, 196_608_000);
  assert.ok(close(j.rows[4].medianTtftS, 1.2, 1e-3), 'text: 6 chunks x 0.2 s (plus the text bytes)');
  const io2 = captureIO();
  assert.is(await main(['stream', 'eval', '--levels', FIXTURE, '--traces', '5', '--prefill-tps', '15000', '--json'], io2), 0);
  assert.ok(close(JSON.parse(io2.text()).rows[4].medianTtftS, 0.6, 1e-3), 'text: 6 x 1500 tokens / 15000 tokens/s');
  const io3 = captureIO();
  assert.is(await main(['stream', 'eval'], io3), 2);
  assert.match(io3.errText(), /--levels/);
});

test.run();
