#!/usr/bin/env node
// Builds the native addon with cmake-js (run by `npm install` / `npm ci` and `npm run build`).
// Checks the tools first so that a failed build says what is missing and how to fix it.
// Extra CMake flags: KVLAB_CMAKE_ARGS="-DKVLAB_WITH_CUDA=OFF -DCMAKE_CUDA_ARCHITECTURES=90"
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout || r.stderr).split('\n')[0] : null;
}

const missing = [];
const cmake = has('cmake');
if (!cmake) missing.push('cmake (>= 3.18): `apt-get install cmake` or https://cmake.org/download');
const cxx = has(process.env.CXX || 'c++') ?? has('g++');
if (!cxx) missing.push('a C++17 compiler: `apt-get install g++`');
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  require.resolve('node-addon-api');
  require.resolve('node-api-headers');
} catch {
  missing.push('the build dependencies cmake-js, node-addon-api, node-api-headers: run `npm ci` in ' + root);
}
if (missing.length) {
  process.stderr.write('kvlab: cannot build the native addon; missing:\n' + missing.map((m) => '  - ' + m).join('\n') + '\n');
  process.exit(1);
}

const extra = (process.env.KVLAB_CMAKE_ARGS || '').split(/\s+/).filter(Boolean).map((a) => (a.startsWith('-D') ? '--C' + a.slice(1) : a));
console.log(`kvlab: building the native addon (${cmake}; ${cxx}; nvcc: ${has('nvcc') ? 'found' : 'not found'})`);
const r = spawnSync(process.execPath, [cmakeJs, 'compile', ...extra], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  process.stderr.write(
    '\nkvlab: the native build failed (see the compiler output above). Common fixes:\n' +
      '  - a stale build folder from another machine or CMake version: `rm -rf build` and retry\n' +
      '  - CUDA toolchain problems: build CPU-only with KVLAB_CMAKE_ARGS=-DKVLAB_WITH_CUDA=OFF npm run build\n' +
      '  - an old compiler: kvlab needs C++17 (g++ >= 9)\n',
  );
  process.exit(r.status ?? 1);
}
