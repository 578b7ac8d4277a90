// One bad input per error class: each gives a typed KvlabError with a stable code, and the process
// (this one) keeps running and can still allocate and compute afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ArgumentError, DTypeError, DeviceError, DisposedError, KvlabError, OutOfMemoryError, ShapeError, Stream, Tensor,
  addon, cudaAvailable, memoryStats,
} from '../src/index.js';
import { native } from '../src/runtime/errors.js';

function throwsTyped(fn: () => unknown, Cls: new (...a: never[]) => KvlabError, code: string, words: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, Cls, `expected ${Cls.name}, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.instance(e, KvlabError);
    assert.is((e as KvlabError).code, code);
    assert.match((e as Error).message, words);
    return;
  }
  assert.unreachable(`expected ${Cls.name} to be thrown`);
}

function stillAlive() {
  const t = Tensor.fromArray([1, 2], [2]).cast('bf16');
  assert.equal(Array.from(t.toFloat32()), [1, 2]);
  t.dispose();
}

test('dtype: an unknown dtype names the accepted ones', () => {
  throwsTyped(() => Tensor.empty([2], { dtype: 'f64' as never }), DTypeError, 'KVLAB_DTYPE', /f32, f16, bf16/);
  throwsTyped(() => Tensor.fromTypedArray(new Uint16Array(2)), DTypeError, 'KVLAB_DTYPE', /explicit dtype/);
  throwsTyped(() => Tensor.fromTypedArray(new Int8Array(2), undefined, { dtype: 'f32' }), DTypeError, 'KVLAB_DTYPE', /cannot load Int8Array/);
  const a = Tensor.fromArray([1], [1]);
  const b = Tensor.empty([1], { dtype: 'f16' });
  throwsTyped(() => b.copyFrom(a), DTypeError, 'KVLAB_DTYPE', /dtypes differ/);
  // the addon re-checks what TypeScript already validates: a raw dtype id out of range
  throwsTyped(() => native(() => addon().cast(a.nativeHandle, 9, b.nativeHandle, 1, 1)), DTypeError, 'KVLAB_DTYPE', /unknown dtype id 9/);
  a.dispose(); b.dispose();
  stillAlive();
});

test('shape: negative, fractional, mismatched and oversized shapes', () => {
  throwsTyped(() => Tensor.empty([2, -1]), ShapeError, 'KVLAB_SHAPE', /integers >= 0/);
  throwsTyped(() => Tensor.empty([2.5]), ShapeError, 'KVLAB_SHAPE', /integers >= 0/);
  throwsTyped(() => Tensor.fromTypedArray(new Float32Array(5), [2, 3]), ShapeError, 'KVLAB_SHAPE', /5 elements but shape \[2, 3\] needs 6/);
  throwsTyped(() => Tensor.empty([2 ** 30, 2 ** 30, 2 ** 30]), ShapeError, 'KVLAB_SHAPE', /too many elements/);
  // the addon re-checks byte ranges even when TypeScript is bypassed
  const t = Tensor.empty([4]);
  throwsTyped(() => native(() => addon().download(t.nativeHandle, 8, 16)), ShapeError, 'KVLAB_SHAPE', /exceeds the storage of 16 bytes/);
  t.dispose();
  stillAlive();
});

test('disposed: any use after dispose() names the tensor', () => {
  const t = Tensor.fromArray([1, 2, 3], [3]);
  t.dispose();
  throwsTyped(() => t.toTypedArray(), DisposedError, 'KVLAB_DISPOSED', /f32\[3\] on cpu was disposed/);
  throwsTyped(() => t.cast('f16'), DisposedError, 'KVLAB_DISPOSED', /disposed/);
  throwsTyped(() => Tensor.empty([3]).copyFrom(t), DisposedError, 'KVLAB_DISPOSED', /disposed/);
  stillAlive();
});

test('out of memory: a 32 TiB host allocation fails cleanly and nothing is counted', () => {
  const before = memoryStats().cpu!.liveBytes;
  throwsTyped(() => Tensor.empty([2 ** 43], { dtype: 'f32' }), OutOfMemoryError, 'KVLAB_OOM', /host allocation of 35184372088832 bytes/);
  assert.is(memoryStats().cpu!.liveBytes, before);
  stillAlive();
});

test('device: CUDA asked for where it is unusable says why; bad device strings are argument errors', () => {
  throwsTyped(() => Tensor.empty([2], { device: 'gpu0' }), ArgumentError, 'KVLAB_ARG', /'cpu', 'cuda' or 'cuda:N'/);
  if (cudaAvailable()) {
    throwsTyped(() => Tensor.empty([2], { device: 'cuda:63' }), DeviceError, 'KVLAB_DEVICE', /cuda:63/);
  } else {
    throwsTyped(() => Tensor.empty([2], { device: 'cuda:0' }), DeviceError, 'KVLAB_DEVICE', /CUDA is not available: .+/);
    throwsTyped(() => Stream.create('cuda:0'), DeviceError, 'KVLAB_DEVICE', /CUDA is not available/);
    throwsTyped(() => Tensor.empty([2], { pinned: true }), DeviceError, 'KVLAB_DEVICE', /CUDA is not available/);
  }
  throwsTyped(() => Stream.create('cpu'), DeviceError, 'KVLAB_DEVICE', /only on CUDA devices/);
  stillAlive();
});

test('argument: the addon rejects foreign objects where handles are expected', () => {
  throwsTyped(() => native(() => addon().download({} as never, 0, 4)), ArgumentError, 'KVLAB_ARG', /expected a kvlab storage handle/);
  throwsTyped(() => native(() => addon().alloc(-1, -5, false)), ArgumentError, 'KVLAB_ARG', /non-negative integer/);
  stillAlive();
});

test.run();
