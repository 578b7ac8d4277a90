/**
 * KV codec test doubles for the evaluation tests (never shipped as codecs): a 12-byte header (tokens,
 * layers, row width) + positions + a payload + the level index. `kind`: f32 identity, fp16 (the
 * runtime's cast), int8 per token (levels q8 = 127 steps, q6 = 31 steps a side), or 'zero' (loses the KV).
 * Decoding assumes head_dim 8 (stories260K).
 */
import type { DecodedSpan, DecodeOptions, EncodeOptions, KVCodec, KVSpan } from '../../src/cachegen/codec.js';
import { Tensor } from '../../src/runtime/tensor.js';

export function codecDouble(name: string, kind: 'f32' | 'f16' | 'int8' | 'zero'): KVCodec {
  const levels = kind === 'int8' ? ['q8', 'q6'] : ['only'];
  return {
    name, levels, defaultLevel: levels[0]!,
    encode(span: KVSpan, o: EncodeOptions = {}): Uint8Array {
      const [L, , n, H, D] = span.kv.shape as number[];
      const x = span.kv.toFloat32();
      const head = new Int32Array([n!, L!, H! * D!]);
      let payload: Uint8Array;
      if (kind === 'f32' || kind === 'zero') payload = new Uint8Array(Float32Array.from(x, (v) => (kind === 'zero' ? 0 : v)).buffer);
      else if (kind === 'f16') { const t = span.kv.cast('f16'); payload = t.toBytes(); t.dispose(); }
      else {
        const bins = o.level === 'q6' ? 31 : 127, row = H! * D!, rows = x.length / row;
        payload = new Uint8Array(rows * 4 + x.length);
        const scales = new Float32Array(payload.buffer, 0, rows);
        const q = new Int8Array(payload.buffer, rows * 4);
        for (let r = 0; r < rows; r++) {
          let m = 0;
          for (let j = 0; j < row; j++) m = Math.max(m, Math.abs(x[r * row + j]!));
          scales[r] = m / bins || 1;
          for (let j = 0; j < row; j++) q[r * row + j] = Math.round(x[r * row + j]! / scales[r]!);
        }
      }
      const out = new Uint8Array(12 + 4 * n! + payload.length + 1);
      out.set(new Uint8Array(head.buffer), 0);
      out.set(new Uint8Array(span.positions.buffer, span.positions.byteOffset, 4 * n!), 12);
      out.set(payload, 12 + 4 * n!);
      out[out.length - 1] = levels.indexOf(o.level ?? levels[0]!);
      return out;
    },
    decode(bytes: Uint8Array, o: DecodeOptions = {}): DecodedSpan {
      const c = bytes.slice();
      const [n, L, row] = new Int32Array(c.buffer, 0, 3) as unknown as [number, number, number];
      const positions = new Int32Array(c.buffer.slice(12, 12 + 4 * n));
      const p = c.subarray(12 + 4 * n, c.length - 1);
      const shape = [L, 2, n, row / 8, 8];
      let kv: Tensor;
      if (kind === 'f16') kv = Tensor.fromBytes(p, shape, { dtype: 'f16' });
      else if (kind !== 'int8') kv = Tensor.fromTypedArray(new Float32Array(p.slice().buffer), shape);
      else {
        const rows = L * 2 * n, scales = new Float32Array(p.slice(0, rows * 4).buffer), q = new Int8Array(p.slice(rows * 4).buffer);
        kv = Tensor.fromTypedArray(Float32Array.from(q, (v, i) => v * scales[Math.floor(i / row)]!), shape);
      }
      const want = o.dtype ?? 'f16';
      if (kv.dtype !== want) { const t = kv.cast(want); kv.dispose(); kv = t; }
      return { kv, positions, fingerprint: o.fingerprint ?? '', codec: name, level: levels[c[c.length - 1]!]! };
    },
  };
}

