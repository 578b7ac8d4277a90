// GPU tests on a GPU host: `node --expose-gc --import tsx test/gpu/run.ts`. With --require-gpu a
// missing GPU is a failure instead of a skip.
import { fileURLToPath } from 'node:url';
import { cudaStatus } from '../../src/index.js';
import { runTests } from '../support/runner.js';

const args = process.argv.slice(2);
if (args.includes('--require-gpu') && !cudaStatus().available) {
  process.stdout.write(`no usable GPU: ${cudaStatus().reason}\n0 passed, 1 failed\n`);
  process.exitCode = 1;
} else {
  process.exitCode = await runTests(fileURLToPath(new URL('.', import.meta.url)), args.filter((a) => !a.startsWith('--')));
}
