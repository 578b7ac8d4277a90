// The KV store's local parts (src/store): chunk keys, the entry format and its checksums, the GPU tier
// (exercised with device 'cpu' where there is no GPU) and CPU tier LRU with byte budgets, the disk tier
// (atomic writes, corrupt and partial entries dropped, ENOSPC injected through the io hook, concurrent
// writers), and KVStore (promotion, write-through, write-back, layer-wise loading, LayerSource shape).
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LayerSource } from '../src/cacheblend/layer-source.js';
import { main } from '../src/cli/main.js';
import { ArgumentError, NotFoundError } from '../src/runtime/errors.js';
import {
  chunkKeys, CorruptEntryError, deserializeEntry, DiskTier, KVStore, MemoryTier, serializeEntry, StorageFullError, tierGet,
  type Entry, type RawEntry,
} from '../src/store/index.js';
import { rawEntry, sameBytes } from './support/store.js';

const tmp = await mkdtemp(join(tmpdir(), 'kvlab-store-'));
let dirN = 0;
const freshDir = () => join(tmp, `d${dirN++}`);
const FP = 'llama/L2/fp-a';

function bytesOf(e: Entry): Uint8Array {
  return e.kind === 'raw' ? e.kv.toBytes() : e.bytes;
}

test('keys: deterministic, 256-token chunks by default, prefix mode chains, position-free does not', () => {
  const toks = Array.from({ length: 600 }, (_, i) => (i * 7919) % 32000);
  const o = { fingerprint: FP, codec: 'cachegen', level: 'mid' };
  const a = chunkKeys(toks, o);
  assert.equal(a.map((k) => [k.start, k.end]), [[0, 256], [256, 512], [512, 600]]);
  assert.equal(a, chunkKeys(Int32Array.from(toks), o));
  assert.ok(a.every((k) => /^[0-9a-f]{64}$/.test(k.key)));
  // Prefix mode: changing chunk 0 changes every later key; position-free: only chunk 0's.
  const toks2 = [...toks];
  toks2[3] = 5;
  const b = chunkKeys(toks2, o);
  assert.ok(a.every((k, i) => k.key !== b[i]!.key));
  const pf = { ...o, mode: 'position-free' as const };
  const c = chunkKeys(toks, pf), d = chunkKeys(toks2, pf);
  assert.is.not(c[0]!.key, d[0]!.key);
  assert.is(c[1]!.key, d[1]!.key);
  // The same chunk's position-free key does not depend on where it sits.
  assert.is(chunkKeys(toks.slice(256, 512), pf)[0]!.key, c[1]!.key);
  // Fingerprint, codec, level and chunk size all count.
  for (const other of [{ ...o, fingerprint: FP + 'x' }, { ...o, codec: 'raw' }, { ...o, level: 'low' }, { ...o, chunkSize: 128 }])
    assert.is.not(chunkKeys(toks, other)[0]!.key, a[0]!.key);
  assert.throws(() => chunkKeys(toks, { ...o, chunkSize: 0 }), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => chunkKeys([1, -2], o), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => chunkKeys(toks, { ...o, fingerprint: '' }), (e: unknown) => e instanceof ArgumentError);
});

test('entry format: round trip is byte-exact; any flipped byte or truncation is a CorruptEntryError', () => {
  const e = rawEntry(1);
  const s = serializeEntry(e);
  const back = deserializeEntry(s) as RawEntry;
  assert.ok(sameBytes(back.kv.toBytes(), e.kv.toBytes()));
  assert.equal([...back.kv.shape], [...e.kv.shape]);
  assert.equal(back.positions, e.positions);
  assert.is(back.fingerprint, e.fingerprint);
  back.kv.dispose();
  const bs = deserializeEntry(serializeEntry({ kind: 'bitstream', bytes: Uint8Array.of(9, 8, 7), codec: 'c', level: 'l' }));
  assert.equal(bs, { kind: 'bitstream', bytes: Uint8Array.of(9, 8, 7), codec: 'c', level: 'l' });
  // Every position flipped (header, header crc, payload) fails, as does every truncation tried.
  for (let at = 0; at < s.length; at += 7) {
    const bad = Uint8Array.from(s);
    bad[at] ^= 0x10;
    assert.throws(() => deserializeEntry(bad), (x: unknown) => x instanceof CorruptEntryError, `flip at ${at}`);
  }
  for (const cut of [0, 5, 12, 40, s.length - 1]) assert.throws(() => deserializeEntry(s.subarray(0, cut)), (x: unknown) => x instanceof CorruptEntryError);
  e.kv.dispose();
});

test('memory tiers: LRU by bytes, use refreshes, too-large entries refused, eviction reported', async () => {
  const one = rawEntry(2); // 3*2*19*2*8*2 = 3648 bytes
  const size = one.kv.byteLength;
  const evicted: string[] = [];
  const gpu = new MemoryTier({ kind: 'gpu', device: 'cpu', budgetBytes: size * 3, onEvict: (k) => evicted.push(k) });
  for (const k of ['a', 'b', 'c']) await gpu.put(k, one);
  assert.ok(await tierGet(gpu, 'a').then((e) => { if (e?.kind === 'raw') e.kv.dispose(); return e !== undefined; })); // a is now most recent
  await gpu.put('d', one);
  assert.equal(evicted, ['b']);
  assert.is(await gpu.has('b'), false);
  assert.ok(await gpu.has('a'));
  assert.is(gpu.stats().usedBytes, size * 3);
  const big = rawEntry(3, 3, 80);
  let refused: unknown = null;
  await gpu.put('big', big).catch((e) => { refused = e; });
  assert.ok(refused instanceof StorageFullError);
  // A handle keeps its entry readable even if the LRU evicts it meanwhile.
  const h = (await gpu.open('c'))!;
  for (const k of ['x', 'y', 'z']) await gpu.put(k, one);
  assert.is(await gpu.has('c'), false);
  const l1 = await h.layer(1, 'cpu');
  const want = one.kv.view([2, 19, 2, 8], 2 * 19 * 2 * 8);
  assert.ok(sameBytes(l1.toBytes(), want.toBytes()));
  h.release();
  for (const t of [l1, want, one.kv, big.kv]) t.dispose();
  await gpu.close();
  const cpu = new MemoryTier({ kind: 'cpu', budgetBytes: 1 << 20 });
  assert.is(cpu.device.toString(), 'cpu');
  await cpu.close();
});

test('disk tier: byte-exact round trip, entries survive reopening, LRU unlinks files', async () => {
  const dir = freshDir();
  const e = rawEntry(4);
  const disk = await DiskTier.open({ dir, budgetBytes: 3 * (e.kv.byteLength + 1000) });
  await disk.put('k1', e);
  await disk.put('k2', { kind: 'bitstream', bytes: Uint8Array.from({ length: 5000 }, (_, i) => i * 13), codec: 'cachegen', level: 'low' });
  const again = await DiskTier.open({ dir, budgetBytes: 3 * (e.kv.byteLength + 1000) });
  const got = (await tierGet(again, 'k1')) as RawEntry;
  assert.ok(sameBytes(got.kv.toBytes(), e.kv.toBytes()));
  got.kv.dispose();
  const bs = await tierGet(again, 'k2');
  assert.is(bs?.kind, 'bitstream');
  for (const k of ['k3', 'k4']) await again.put(k, e);
  assert.is(await again.has('k1'), false, 'the oldest entry was evicted');
  assert.ok((await readdir(dir)).every((n) => !n.endsWith('.tmp')));
  e.kv.dispose();
});

test('disk tier: a corrupt or partial file is dropped, reported, and never returned', async () => {
  const dir = freshDir();
  const reports: string[] = [];
  const disk = await DiskTier.open({ dir, budgetBytes: 1 << 20, onCorrupt: (k, why) => reports.push(`${k}: ${why}`) });
  const e = rawEntry(5);
  for (const k of ['flip', 'short', 'header', 'layer']) await disk.put(k, e);
  const file = (k: string) => join(dir, `${k}.kvse`);
  const flip = await readFile(file('flip'));
  flip[flip.length - 10] ^= 1;
  await writeFile(file('flip'), flip);
  await writeFile(file('short'), (await readFile(file('short'))).subarray(0, 500));
  const hdr = await readFile(file('header'));
  hdr[20] ^= 4;
  await writeFile(file('header'), hdr);
  for (const k of ['flip', 'short', 'header']) {
    const r = await tierGet(disk, k).catch((x) => x);
    assert.ok(r === undefined || r instanceof CorruptEntryError, `${k}: ${r}`);
    assert.is(await disk.has(k), false, `${k} was deleted`);
  }
  // Layer-wise: a bad layer 2 is found when layer 2 is read; layers before it were good.
  const lay = await readFile(file('layer'));
  lay[lay.length - 3] ^= 0x40;
  await writeFile(file('layer'), lay);
  const h = (await disk.open('layer'))!;
  (await h.layer(0, 'cpu')).dispose();
  let err: unknown = null;
  await h.layer(2, 'cpu').catch((x) => { err = x; });
  h.release();
  assert.ok(err instanceof CorruptEntryError);
  assert.is(disk.stats().corruptDropped, 4);
  assert.is(reports.length, 4);
  e.kv.dispose();
});

test('disk tier: ENOSPC mid-write is a StorageFullError, the temp file is gone, old entries intact', async () => {
  const dir = freshDir();
  let failAfter = Infinity, written = 0;
  const disk = await DiskTier.open({
    dir, budgetBytes: 1 << 22,
    io: {
      async write(fh, data, pos) {
        if (written + data.byteLength > failAfter) {
          // Half the bytes land, then the disk is full: what a real short write then ENOSPC looks like.
          await fh.write(data, 0, Math.floor(data.byteLength / 2), pos);
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        written += data.byteLength;
        return (await fh.write(data, 0, data.byteLength, pos)).bytesWritten;
      },
    },
  });
  const e = rawEntry(6), f = rawEntry(7);
  await disk.put('old', e);
  failAfter = written + 100;
  let err: unknown = null;
  await disk.put('old', f).catch((x) => { err = x; });
  assert.ok(err instanceof StorageFullError, String(err));
  await disk.put('new', f).catch(() => {});
  assert.equal((await readdir(dir)).sort(), ['old.kvse']);
  const got = (await tierGet(disk, 'old')) as RawEntry;
  assert.ok(sameBytes(got.kv.toBytes(), e.kv.toBytes()), 'the old entry is untouched');
  for (const t of [got.kv, e.kv, f.kv]) t.dispose();
});

test('disk tier: concurrent writers of one key leave one whole winner', async () => {
  const dir = freshDir();
  const disk = await DiskTier.open({ dir, budgetBytes: 1 << 24 });
  const entries = Array.from({ length: 6 }, (_, i) => rawEntry(20 + i, 4, 64));
  await Promise.all(entries.map((e) => disk.put('same', e)));
  const got = (await tierGet(disk, 'same')) as RawEntry;
  const b = got.kv.toBytes();
  assert.is(entries.filter((e) => sameBytes(e.kv.toBytes(), b)).length, 1);
  assert.equal(await readdir(dir), ['same.kvse']);
  got.kv.dispose();
  for (const e of entries) e.kv.dispose();
});

test('KVStore: miss, write-through to every tier, promotion of lower hits, loadLayers and LayerSource', async () => {
  const gpu = new MemoryTier({ kind: 'gpu', device: 'cpu', budgetBytes: 1 << 20 });
  const cpu = new MemoryTier({ kind: 'cpu', budgetBytes: 1 << 20 });
  const disk = await DiskTier.open({ dir: freshDir(), budgetBytes: 1 << 22 });
  const store = new KVStore({ tiers: [gpu, cpu, disk] });
  assert.is(await store.get('nope'), undefined);
  let nf: unknown = null;
  try { for await (const l of store.loadLayers('nope')) l.dispose(); } catch (x) { nf = x; }
  assert.ok(nf instanceof NotFoundError);
  const e = rawEntry(8, 5, 33);
  await store.put('k', e);
  for (const t of [gpu, cpu, disk]) assert.ok(await t.has('k'), t.name);
  await gpu.delete('k');
  await cpu.delete('k');
  const layers: Uint8Array[] = [];
  for await (const l of store.loadLayers('k', 'cpu')) {
    assert.equal([...l.shape], [2, 33, 2, 8]);
    layers.push(l.toBytes());
    l.dispose();
  }
  assert.ok(sameBytes(Buffer.concat(layers), e.kv.toBytes()), 'layers concatenate to the stored KV');
  await store.flush();
  assert.ok(await gpu.has('k'), 'the disk hit was promoted to the GPU tier');
  // The LayerSource shape CacheBlend consumes (checked by the compiler through this assignment).
  const src = await store.layerSource('k', 'cpu');
  const asLayerSource: LayerSource = src;
  assert.is(asLayerSource.layers, 5);
  const l4 = await asLayerSource.load(4);
  const want = e.kv.view([2, 33, 2, 8], 4 * 2 * 33 * 2 * 8);
  assert.ok(sameBytes(l4.toBytes(), want.toBytes()));
  await src.load(9).then(() => assert.unreachable(), (x) => assert.ok(x instanceof ArgumentError));
  src.close();
  for (const t of [l4, want, e.kv]) t.dispose();
  await store.close();
});

test('KVStore: bitstream entries are decoded by the named codec for layer loading', async () => {
  const e = rawEntry(9, 4, 7);
  // A stand-in codec (the real one lives in src/cachegen): its container is just serializeEntry's.
  const fake = {
    name: 'fake', levels: ['x'], defaultLevel: 'x',
    encode: () => new Uint8Array(),
    decode: (bytes: Uint8Array) => {
      const r = deserializeEntry(bytes) as RawEntry;
      return { kv: r.kv, positions: r.positions, fingerprint: r.fingerprint, codec: 'fake', level: 'x' };
    },
  };
  const store = new KVStore({ tiers: [new MemoryTier({ kind: 'cpu', budgetBytes: 1 << 20 })], codecs: [fake] });
  await store.put('b', { kind: 'bitstream', bytes: serializeEntry(e), codec: 'fake', level: 'x' });
  const got: Uint8Array[] = [];
  for await (const l of store.loadLayers('b')) { got.push(l.toBytes()); l.dispose(); }
  assert.ok(sameBytes(Buffer.concat(got), e.kv.toBytes()));
  await store.put('u', { kind: 'bitstream', bytes: Uint8Array.of(1), codec: 'unknown', level: 'x' });
  await store.layerSource('u').then(() => assert.unreachable(), (x) => assert.ok(x instanceof ArgumentError && /unknown/.test(x.message)));
  e.kv.dispose();
  await store.close();
});

test('KVStore: write-back keeps new entries on top and writes them down on eviction and flush', async () => {
  const e = rawEntry(10);
  const gpu = new MemoryTier({ kind: 'gpu', device: 'cpu', budgetBytes: e.kv.byteLength * 2 });
  const disk = await DiskTier.open({ dir: freshDir(), budgetBytes: 1 << 22 });
  const store = new KVStore({ tiers: [gpu, disk], writePolicy: 'write-back' });
  await store.put('a', e);
  await store.put('b', e);
  assert.is(await disk.has('a'), false, 'not written down yet');
  await store.put('c', e); // evicts a -> demoted to disk
  await store.flush();
  for (const k of ['a', 'b', 'c']) assert.ok(await disk.has(k), k);
  const got = (await store.get('a')) as RawEntry;
  assert.ok(sameBytes(got.kv.toBytes(), e.kv.toBytes()));
  got.kv.dispose();
  e.kv.dispose();
  await store.close();
});

test('kvlab bench store --json: benchmark JSON with put/get/layers GB/s per tier', async () => {
  let out = '';
  const io = { out: (t: string) => { out += t; }, write: () => {}, err: () => {}, env: {}, cwd: process.cwd() };
  const code = await main(['bench', 'store', '--tiers', 'cpu,disk', '--tokens', '2', '--reps', '1', '--dir', freshDir(), '--json'], io);
  assert.is(code, 0);
  const j = JSON.parse(out);
  assert.is(j.bench, 'store');
  assert.ok(j.card && j.date && j.versions.kvlab);
  assert.equal(j.rows.map((r: { case: { tier: string }; metric: string }) => `${r.case.tier}:${r.metric}`),
    ['cpu:put', 'cpu:get', 'cpu:layers', 'disk:put', 'disk:get', 'disk:layers']);
  assert.ok(j.rows.every((r: { value: number; unit: string }) => r.value > 0 && r.unit === 'GB/s'));
});

test.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test.run();
