// The CUDA side of the runtime: streams, async copies with pinned memory, device memory accounting,
// device OOM as a typed error, fallback reporting.
import * as assert from 'uvu/assert';
import { OutOfMemoryError, Stream, Tensor, cudaStatus, memoryStats, resolveDevice } from '../../src/index.js';
import { gpuSuite, poison } from '../support/gpu.js';
import { randomFloats } from '../support/reference.js';

const test = gpuSuite('gpu runtime');

test('doctor facts: a device with memory and compute capability >= 8.0, cuBLAS usable', () => {
  const s = cudaStatus();
  assert.ok(s.compiled && s.available);
  assert.ok(s.devices.length >= 1);
  assert.ok(Number(s.devices[0]!.computeCapability) >= 8.0);
  assert.ok(s.devices[0]!.totalMemory > 2 ** 30);
  assert.ok(s.cublas, s.cublasReason);
  assert.is(resolveDevice('auto').toString(), 'cuda:0');
});

test('async copies on two streams with pinned memory, awaited, are exact', async () => {
  const x = randomFloats(1 << 20, 11);
  const host = Tensor.fromTypedArray(x, undefined, { pinned: true });
  assert.ok(host.pinned);
  const s1 = Stream.create('cuda:0');
  const s2 = Stream.create('cuda:0');
  const dev = await host.toAsync('cuda:0', s1);
  const back = Tensor.empty(host.shape, { pinned: true });
  poison(back);
  await back.copyFromAsync(dev, s2);
  const y = back.toTypedArray() as Float32Array;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.unreachable(`element ${i} differs`);
  // a cast queued on a stream, then synchronised
  const h = dev.cast('bf16', s1);
  await s1.synchronize();
  assert.is(h.toFloat32()[0], Tensor.fromTypedArray(x.subarray(0, 1)).cast('bf16').toFloat32()[0]);
  for (const t of [host, dev, back, h]) t.dispose();
  s1.dispose();
  s2.dispose();
  s1.dispose();  // idempotent
});

test('disposing a tensor while its async copy is in flight is safe', async () => {
  const host = Tensor.fromTypedArray(randomFloats(1 << 22, 12), undefined, { pinned: true });
  const dev = Tensor.empty(host.shape, { device: 'cuda:0' });
  const s = Stream.create('cuda:0');
  const p = dev.copyFromAsync(host, s);
  host.dispose();  // the native side keeps the storage alive until the copy finished
  await p;
  dev.dispose();
  s.dispose();
});

test('device memory is counted and returned; a huge device allocation is a typed OOM', () => {
  const base = memoryStats()['cuda:0']?.liveBytes ?? 0;
  const t = Tensor.empty([1 << 20], { dtype: 'f16', device: 'cuda:0' });
  assert.is(memoryStats()['cuda:0']!.liveBytes - base, 2 << 20);
  t.dispose();
  assert.is(memoryStats()['cuda:0']!.liveBytes, base);
  try {
    Tensor.empty([2 ** 48], { dtype: 'u8', device: 'cuda:0' });
    assert.unreachable('a 256 TiB allocation succeeded');
  } catch (e) {
    assert.instance(e, OutOfMemoryError);
    assert.match((e as Error).message, /cuda:0 allocation of .* out of device memory/);
  }
  // the device still works after the failed allocation
  const ok = Tensor.fromArray([1, 2, 3], [3], { device: 'cuda:0' });
  assert.equal(Array.from(ok.toFloat32()), [1, 2, 3]);
  ok.dispose();
});

test.run();
