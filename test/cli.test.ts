import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COMMANDS, main } from '../src/cli/main.js';
import type { CliIO } from '../src/cli/command.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const x: CliIO = { out: (t) => out.push(t), write: (t) => out.push(t), err: (t) => err.push(t), env: {}, cwd: process.cwd() };
  return { x, out, err };
}

test('every command has --help, generated from its options', async () => {
  for (const c of COMMANDS) {
    const { x, out } = io();
    assert.is(await main([c.name, '--help'], x), 0);
    assert.match(out.join('\n'), new RegExp(`^Usage: kvlab ${c.name}`));
    for (const opt of Object.keys(c.options)) assert.match(out.join('\n'), `--${opt}`);
  }
  const { x, out } = io();
  assert.is(await main(['--help'], x), 0);
  for (const c of COMMANDS) assert.match(out.join('\n'), c.name);
});

test('doctor --json reports the addon, threads, CUDA build and the reason CUDA is unusable', async () => {
  const { x, out } = io();
  assert.is(await main(['doctor', '--json'], x), 0);
  const r = JSON.parse(out.join(''));
  assert.is(r.addon.loaded, true);
  assert.is(r.addon.version, '0.1.0');
  assert.ok(r.cpu.threads >= 1);
  assert.type(r.cuda.compiled, 'boolean');
  if (!r.cuda.available) {
    assert.type(r.cuda.reason, 'string');
    assert.ok(r.cuda.reason.length > 10);
    assert.is(r.defaultDevice, 'cpu');
  } else {
    assert.ok(r.cuda.devices.length > 0);
    assert.type(r.cuda.devices[0].computeCapability, 'string');
  }
  if (!r.cuda.compiled && r.addon.build.nvccVersion) {
    // nvcc without cuBLAS (the CI machine): the kernels were still compiled, and the reason says why
    assert.ok(r.cuda.kernelsCompiled.includes('cast.cu'));
    assert.match(r.cuda.reason, /cuBLAS/);
  }
});

test('generate: stories260K by name from the search path, greedy, JSON output', async () => {
  const { x, out } = io();
  x.env.KVLAB_MODELS = '/nonexistent-folder';
  assert.is(await main(['generate', '--model', 'stories260K', '--prompt', 'Once upon a time', '--max-tokens', '20', '--json'], x), 0);
  const r = JSON.parse(out.join(''));
  assert.equal(r.promptTokens, [1, 403, 407, 261, 378]);
  // run.c's first 20 greedy tokens for this prompt (test/fixtures/llama2c-stories260K.json)
  assert.equal(r.tokens, [432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292]);
  assert.match(r.text, /^Once upon a time/);
});

test('generate: a missing model lists every folder tried', async () => {
  const { x, err } = io();
  x.env.KVLAB_MODELS = '/nonexistent-folder';
  assert.is(await main(['generate', '--model', 'no-such-model'], x), 1);
  assert.match(err.join(''), /NotFoundError \[KVLAB_NOT_FOUND\]: model 'no-such-model' not found; looked in:\n  \/nonexistent-folder\n/);
});

test('bench prefill on the CPU writes the benchmark JSON of DESIGN.md', async () => {
  const { x, out } = io();
  assert.is(await main(['bench', 'prefill', '--model', 'stories260K', '--device', 'cpu', '--dtype', 'f32', '--tokens', '32,64',
    '--decode-prompt', '8', '--decode-tokens', '4', '--reps', '1', '--json'], x), 0);
  const j = JSON.parse(out.join(''));
  assert.is(j.bench, 'prefill');
  assert.type(j.card, 'string');
  assert.type(j.date, 'string');
  assert.is(j.versions.kvlab, '0.1.0');
  assert.equal(j.rows.map((r: { metric: string }) => r.metric), ['prefill', 'prefill', 'decode']);
  for (const r of j.rows) {
    assert.ok(r.value > 0);
    for (const k of ['case', 'unit', 'baseline', 'ratioToBaseline', 'floor']) assert.ok(k in r, k);
  }
});

test('blend eval on stories260K: rows for every method, ratio 1.0 equals full prefill, cacheblend beats full reuse', async () => {
  const { x, out } = io();
  assert.is(await main(['blend', 'eval', '--contexts', '1', '--ratios', '0.15,1', '--json'], x), 0);
  const j = JSON.parse(out.join(''));
  assert.is(j.dataset, 'stories260k-blend v1');
  const row = (m: string, r?: number) => j.rows.find((x: { method: string; requestedRatio: number | null }) => x.method === m && (r === undefined || x.requestedRatio === r));
  for (const m of ['full-reuse', 'full-recompute', 'prefix-caching', 'cacheblend', 'cacheblend-released', 'lmcache-v1', 'epic', 'random', 'oracle'])
    for (const k of ['ratio', 'computeFraction', 'kl', 'pplDeltaPct', 'top1', 'attnDev']) assert.type(row(m)[k], 'number', `${m}.${k}`);
  assert.ok(row('full-recompute').kl < 1e-9);
  assert.ok(row('cacheblend', 1).kl < 1e-9);
  assert.ok(row('cacheblend', 0.15).kl < row('full-reuse').kl);
  assert.ok(Math.abs(row('cacheblend', 0.15).ratio - 0.15) < 0.01);
});

test('blend bench on the CPU: TTFT rows for every method against full recompute (benchmark JSON)', async () => {
  const { x, out } = io();
  assert.is(await main(['bench', 'blend', '--model', 'stories260K', '--device', 'cpu', '--dtype', 'f32', '--chunks', '3',
    '--chunk-tokens', '40', '--query-tokens', '8', '--reps', '1', '--json'], x), 0);
  const j = JSON.parse(out.join(''));
  assert.is(j.bench, 'blend');
  const methods = j.rows.map((r: { case: { method: string } }) => r.case.method);
  assert.equal(methods, ['full-recompute', 'full-reuse', 'epic', 'epic', 'cacheblend', 'cacheblend', 'cacheblend', 'cacheblend', 'query-attention']);
  // query-attention's pre-pass (the query through layers 0..L-2) is in its compute fraction.
  const qa = j.rows.at(-1);
  assert.ok(qa.case.computeFraction > qa.case.ratio, JSON.stringify(qa.case));
  for (const r of j.rows.slice(1)) assert.ok(r.ratioToBaseline > 0 && r.baseline === 'full-recompute');
  // The second epic row runs at cacheblend-15%'s compute fraction (the equal-compute comparison).
  const cb15 = j.rows.find((r: { case: { method: string; ratio: number } }) => r.case.method === 'cacheblend' && r.case.ratio === 0.15);
  assert.ok(Math.abs(j.rows[3].case.computeFraction - cb15.case.computeFraction) < 0.05, JSON.stringify(j.rows[3].case));
});

test('unknown commands and flags are errors with usage, not crashes', async () => {
  let s = io();
  assert.is(await main(['frobnicate'], s.x), 2);
  assert.match(s.err.join(''), /unknown command 'frobnicate'/);
  s = io();
  assert.is(await main(['doctor', '--nope'], s.x), 2);
  assert.match(s.err.join(''), /ArgumentError \[KVLAB_ARG\].*--nope/);
});

test.run();
