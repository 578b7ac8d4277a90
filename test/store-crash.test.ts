// Crash safety of the disk tier: a child process writing entries is killed with SIGKILL mid-run,
// several times; then every entry read back is either a miss or byte-exactly what its writer wrote
// (the seed in its fingerprint rebuilds it). Never a corrupt or partial entry.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DiskTier, tierGet, type RawEntry } from '../src/store/index.js';
import { rawEntry, sameBytes } from './support/store.js';

const WRITER = fileURLToPath(new URL('./support/store-writer.ts', import.meta.url));

/** Starts the writer, waits for `writes` completed writes, lets it run `extraMs` more, kills it. */
async function runAndKill(dir: string, seed: number, writes: number, extraMs: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      done += (b.toString().match(/wrote/g) ?? []).length;
      if (done >= writes) resolve();
    });
    child.on('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
  });
  await new Promise((r) => setTimeout(r, extraMs));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return done;
}

test('SIGKILL mid-write: reads return whole entries or misses, never a corrupt one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kvlab-crash-'));
  try {
    let leftovers = 0;
    for (let round = 0; round < 4; round++) {
      await runAndKill(dir, 1 + round * 1000, 3, 3 + round * 7);
      leftovers += (await readdir(dir)).filter((n) => n.endsWith('.tmp')).length;
    }
    const tier = await DiskTier.open({ dir, budgetBytes: 1 << 30 });
    let whole = 0;
    for (let k = 0; k < 5; k++) {
      const got = (await tierGet(tier, `k${k}`)) as RawEntry | undefined;
      if (!got) continue;
      const seed = Number(/^seed:(\d+)$/.exec(got.fingerprint)![1]);
      const want = rawEntry(seed, 8, 256, 4, 64);
      assert.ok(sameBytes(got.kv.toBytes(), want.kv.toBytes()), `k${k} holds exactly seed ${seed}'s entry`);
      want.kv.dispose();
      got.kv.dispose();
      whole++;
    }
    assert.ok(whole >= 3, `at least the first writes survived whole (${whole})`);
    assert.is(tier.stats().corruptDropped, 0, 'no final file is ever partial (temp + fsync + rename)');
    // Killed writers' temp files are invisible to readers (they may remain until they go stale).
    process.stdout.write(`  crash test: ${whole} whole entries, ${leftovers} temp files left by killed writers over 4 rounds\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
