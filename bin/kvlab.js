#!/usr/bin/env node
// The kvlab command. Runs the compiled CLI (dist/, made by `npm run build` or `npm ci`).
let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/cli/main.js')) {
    process.stderr.write('kvlab: the TypeScript sources are not compiled (dist/ is missing): run `npm run build` in the kvlab folder\n');
    process.exit(1);
  }
  throw e;
}
process.exitCode = await cli.main(process.argv.slice(2), cli.processIO);
