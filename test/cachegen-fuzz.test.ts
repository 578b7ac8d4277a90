// The container decoder under the randomised mutation harness (native/codec/fuzz, built with the
// addon as build/Release/kvlab_codec_fuzz): 20k mutated containers of every codec (bit flips,
// truncations, extensions, splices, length-field attacks; half with recomputed checksums) must each
// end in a decoded KV or a typed error, none in a crash, another exception or a hang.
// The 1e6-input run under AddressSanitizer + UBSan is a manual step (src/cachegen/FORMAT.md).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PACKAGE_ROOT } from '../src/runtime/addon.js';

const BIN = PACKAGE_ROOT + 'build/Release/kvlab_codec_fuzz';

test('fuzz: 20k mutated containers, no crash, no unexpected exception, no hang', () => {
  assert.ok(existsSync(BIN), `${BIN} is not built (npm run build builds it with the addon)`);
  const r = spawnSync(BIN, ['--inputs', '20000', '--seed', '11', '--hang-ms', '2000', '--json'], { encoding: 'utf8', timeout: 120_000 });
  assert.is(r.signal, null, `the harness was killed by ${r.signal}: ${r.stderr}`);
  assert.is(r.status, 0, r.stdout + r.stderr);
  const s = JSON.parse(r.stdout) as Record<string, number>;
  assert.is(s.inputs, 20000);
  assert.is(s.unexpected, 0);
  assert.is(s.hangs, 0);
  assert.is(s.decoded! + s.formatErrors! + s.otherTypedErrors! + s.badAlloc! + s.sizeCapped!, 20000);
  assert.ok(s.decoded! > 0 && s.formatErrors! > 0, 'both outcomes are exercised');
});

test.run();
