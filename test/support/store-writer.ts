// Child process for the store crash test: writes seeded raw entries to a disk tier in a loop until
// it is killed (SIGKILL). Each entry's fingerprint names its seed, so a reader can rebuild what a
// whole entry must hold. Prints "wrote N" after each write.
import { DiskTier } from '../../src/store/index.js';
import { rawEntry } from './store.js';

const dir = process.argv[2]!;
const disk = await DiskTier.open({ dir, budgetBytes: 1 << 30 });
for (let seed = Number(process.argv[3] ?? 1); ; seed++) {
  const e = rawEntry(seed, 8, 256, 4, 64);
  await disk.put(`k${seed % 5}`, { ...e, fingerprint: `seed:${seed}` });
  e.kv.dispose();
  process.stdout.write(`wrote ${seed}\n`);
}
