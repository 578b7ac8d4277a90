// The Redis tier against a real server (KVLAB_TEST_REDIS_URL; .ci/run starts a throwaway one): put/get
// of raw KV and bitstreams, values split into parts, the LRU budget, concurrent writers, a corrupt part
// dropped. Then a slow server (DEBUG SLEEP past the command timeout) and an outage (a dedicated
// redis-server child killed mid-run): the store keeps reading and writing locally, reports degraded,
// and once Redis answers again replays what it missed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, RESP_TYPES } from 'redis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CorruptEntryError, DiskTier, KVStore, MemoryTier, RedisTier, serializeEntry, tierGet, TierUnavailableError, type RawEntry } from '../src/store/index.js';
import { rawEntry, sameBytes } from './support/store.js';

const URL_ = process.env.KVLAB_TEST_REDIS_URL;
const SKIP = URL_ ? '' : 'KVLAB_TEST_REDIS_URL is not set (CI starts a Redis server; locally: redis-server --port P --save "" and export the URL)';
const HAS_BINARY = spawnSync('redis-server', ['--version']).status === 0;
const prefix = `kvlab-test-${process.pid}:`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--enable-debug-command', 'yes'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const c = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false, connectTimeout: 200 } });
    c.on('error', () => {});
    const ok = await c.connect().then(() => c.ping()).then(() => true, () => false);
    c.destroy();
    if (ok) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${port}`);
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

if (SKIP) {
  test.skip(`redis tier (skipped: ${SKIP})`, () => {});
} else {
  test('redis: raw and bitstream round trips; a value bigger than partBytes is split and reassembled', async () => {
    const tier = await RedisTier.connect({ url: URL_!, prefix, budgetBytes: 1 << 26, partBytes: 4096 });
    try {
      await tier.clear();
      const e = rawEntry(1, 6, 100, 2, 16); // 76800 bytes of KV -> 19+ parts
      await tier.put('raw', e);
      const got = (await tierGet(tier, 'raw')) as RawEntry;
      assert.ok(sameBytes(got.kv.toBytes(), e.kv.toBytes()));
      assert.equal(got.positions, e.positions);
      const h = (await tier.open('raw'))!;
      const l3 = await h.layer(3, 'cpu');
      const want = e.kv.view([2, 100, 2, 16], 3 * 2 * 100 * 2 * 16);
      assert.ok(sameBytes(l3.toBytes(), want.toBytes()));
      const c = createClient({ url: URL_! });
      await c.connect();
      const parts = await c.keys(`${prefix}p:raw:*`);
      assert.ok(parts.length > 18, `split into ${parts.length} parts`);
      const bytes = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 31) & 255);
      await tier.put('bits', { kind: 'bitstream', bytes, codec: 'cachegen', level: 'mid' });
      const b = await tierGet(tier, 'bits');
      assert.ok(b?.kind === 'bitstream' && sameBytes(b.bytes, bytes) && b.codec === 'cachegen' && b.level === 'mid');
      assert.is(await tierGet(tier, 'absent'), undefined);
      // Layer-wise through a KVStore whose only copy is in Redis (parts stream in; each layer checked).
      const store = new KVStore({ tiers: [new MemoryTier({ kind: 'cpu', budgetBytes: 1 << 20 }), tier], promote: false });
      const layers: Uint8Array[] = [];
      for await (const l of store.loadLayers('raw', 'cpu')) { layers.push(l.toBytes()); l.dispose(); }
      assert.ok(sameBytes(Buffer.concat(layers), e.kv.toBytes()));
      // A damaged part: the CRC catches it, the entry is dropped, never returned.
      // Damaged parts (a wrong length, then flipped bytes of the right length): never returned.
      await c.set(parts[3]!, 'garbage');
      const r1 = await tierGet(tier, 'raw').catch((x) => x);
      assert.ok(r1 === undefined || r1 instanceof CorruptEntryError, String(r1));
      assert.is(await tier.has('raw'), false);
      assert.is(tier.stats().corruptDropped, 1);
      await tier.put('raw2', e);
      const parts2 = (await c.keys(`${prefix}p:raw2:*`)).sort();
      const p5 = await c.sendCommand(['GET', parts2[5]!], { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }) as Buffer;
      p5[100] ^= 0x08;
      await c.sendCommand(['SET', parts2[5]!, p5]);
      const r2 = await tierGet(tier, 'raw2').catch((x) => x);
      assert.ok(r2 === undefined || r2 instanceof CorruptEntryError, String(r2));
      assert.is(await tier.has('raw2'), false);
      assert.is(tier.stats().corruptDropped, 2);
      await c.close();
      for (const t of [got.kv, l3, want, e.kv]) t.dispose();
    } finally {
      await tier.clear();
      await tier.close();
    }
  });

  test('redis: LRU byte budget evicts the least recently used; concurrent writers leave one winner', async () => {
    const e = rawEntry(2);
    const size = serializeEntry(e).byteLength;
    const tier = await RedisTier.connect({ url: URL_!, prefix, budgetBytes: 3 * size + 100, partBytes: 1024 });
    try {
      await tier.clear();
      // recency is a millisecond clock: pause between steps so no two share a tick (a tie would
      // order by key name and make the expected victim a matter of timing)
      const tick = () => new Promise((r) => setTimeout(r, 5));
      for (const k of ['a', 'b', 'c']) {
        await tier.put(k, e);
        await tick();
      }
      (await tierGet(tier, 'a') as RawEntry).kv.dispose(); // a is now the most recent
      await tick();
      await tier.put('d', e);
      assert.is(await tier.has('b'), false, 'b was evicted');
      for (const k of ['a', 'c', 'd']) assert.ok(await tier.has(k), k);
      assert.is(await tier.usedBytes(), 3 * size);
      const many = Array.from({ length: 5 }, (_, i) => rawEntry(30 + i));
      await Promise.all(many.map((m) => tier.put('race', m)));
      const got = (await tierGet(tier, 'race')) as RawEntry;
      assert.is(many.filter((m) => sameBytes(m.kv.toBytes(), got.kv.toBytes())).length, 1);
      const c = createClient({ url: URL_! });
      await c.connect();
      assert.is((await c.keys(`${prefix}p:race:*`)).length, Math.ceil(size / 1024), 'replaced versions\' parts are deleted');
      const used = await tier.usedBytes();
      assert.ok(used <= 3 * size + 100 && used >= 3 * size - 50, `the byte counter counts race once (${used})`);
      for (const k of ['a', 'd', 'race']) assert.ok(await tier.has(k), k);
      await c.close();
      got.kv.dispose();
      for (const m of many) m.kv.dispose();
    } finally {
      await tier.clear();
      await tier.close();
      e.kv.dispose();
    }
  });

  test('redis: an unreachable server is a TierUnavailableError at connect', async () => {
    const port = await freePort();
    await RedisTier.connect({ url: `redis://127.0.0.1:${port}`, budgetBytes: 1 << 20 }).then(
      () => assert.unreachable(), (x) => assert.ok(x instanceof TierUnavailableError, String(x)));
  });

  if (!HAS_BINARY) {
    test.skip('redis outage (skipped: no redis-server binary to start a dedicated server)', () => {});
  } else {
    test('redis outage: server killed mid-run -> local reads and writes go on, degraded, replayed after restart', async () => {
      const port = await freePort();
      const url = `redis://127.0.0.1:${port}`;
      let server = await startRedis(port);
      const dir = await mkdtemp(join(tmpdir(), 'kvlab-outage-'));
      const statuses: boolean[] = [];
      const redis = await RedisTier.connect({ url, budgetBytes: 1 << 26, timeoutMs: 300, reconnectMinMs: 20, reconnectMaxMs: 200 });
      const store = new KVStore({
        tiers: [new MemoryTier({ kind: 'cpu', budgetBytes: 1 << 16 }), await DiskTier.open({ dir, budgetBytes: 1 << 26 }), redis],
        retryMinMs: 50, retryMaxMs: 400, onStatus: (s) => statuses.push(s.degraded),
      });
      const entries = Array.from({ length: 9 }, (_, i) => rawEntry(100 + i));
      try {
        for (let i = 0; i < 3; i++) await store.put(`e${i}`, entries[i]!);
        assert.ok(await redis.has('e0'));
        // Slow: the server stalls (DEBUG SLEEP 1 s) past the 300 ms command timeout. The put returns
        // after the timeout, not after the stall, and the store is degraded until Redis answers again.
        const admin = createClient({ url });
        admin.on('error', () => {});
        await admin.connect();
        const stall = admin.sendCommand(['DEBUG', 'SLEEP', '1']).catch(() => {});
        await new Promise((r) => setTimeout(r, 50));
        const t0 = performance.now();
        await store.put('slow', entries[8]!);
        const putMs = performance.now() - t0;
        assert.ok(putMs < 900, `put took ${putMs.toFixed(0)} ms`);
        assert.ok(store.status().degraded, 'degraded while Redis is slow');
        await stall;
        await admin.close();
        assert.ok(await waitFor(() => !store.status().degraded, 8000), 'recovered after the stall');
        assert.ok(await redis.has('slow'), 'the write Redis timed out on was replayed');
        server.kill('SIGKILL');
        await new Promise((r) => server.once('exit', r));
        // Writes and reads continue while Redis is down.
        for (let i = 3; i < 8; i++) await store.put(`e${i}`, entries[i]!);
        const st = store.status();
        assert.ok(st.degraded, 'degraded while Redis is down');
        assert.is(st.remotes[0]!.healthy, false);
        assert.ok(st.remotes[0]!.pendingWrites >= 4, `queued ${st.remotes[0]!.pendingWrites}`);
        assert.ok(st.remotes[0]!.lastError);
        for (let i = 0; i < 8; i++) {
          const got = (await store.get(`e${i}`)) as RawEntry;
          assert.ok(got && sameBytes(got.kv.toBytes(), entries[i]!.kv.toBytes()), `e${i} served locally`);
          got.kv.dispose();
        }
        // Restart (an empty server: no persistence) on the same port; the client reconnects, the
        // store's retry replays every write Redis missed.
        server = await startRedis(port);
        assert.ok(await waitFor(() => !store.status().degraded, 8000), 'recovered after restart');
        assert.equal(statuses, [true, false, true, false]);
        for (let i = 3; i < 8; i++) assert.ok(await redis.has(`e${i}`), `e${i} replayed to Redis`);
        const back = (await tierGet(redis, 'e5')) as RawEntry;
        assert.ok(sameBytes(back.kv.toBytes(), entries[5]!.kv.toBytes()));
        back.kv.dispose();
        assert.is(store.status().remotes[0]!.pendingWrites, 0);
      } finally {
        await store.close();
        server.kill('SIGKILL');
        for (const e of entries) e.kv.dispose();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
}

test.run();
