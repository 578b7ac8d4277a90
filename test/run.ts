// `npm test`: every test file under test/ (GPU tests skip cleanly where no GPU is usable).
import { fileURLToPath } from 'node:url';
import { runTests } from './support/runner.js';

process.exitCode = await runTests(fileURLToPath(new URL('.', import.meta.url)), process.argv.slice(2));
