/**
 * A transform in front of CacheGen (kvlab's own step beyond the paper, after KVTC's observation that
 * KV channels are strongly correlated): per (layer, K|V), KV rows are centred and projected onto the
 * principal components of sample KV of the model, K first rotated back to position 0 (pre-RoPE, so
 * one basis serves every position). Uniform quantisation + entropy coding of the coefficients then
 * spends bits where the variance is (the tail components mostly quantise to zero). The basis is a
 * per-model profile, like CacheGen's probability tables: built once, referenced by hash, its size
 * reported apart. The transform runs on the host in f32 (a C x C product per row; the Jacobi eigen-solve
 * suits C up to a few hundred: a 7B model's C = 1024 wants a faster solver).
 */
import { createHash } from 'node:crypto';
import { ArgumentError, FormatError, ShapeError } from '../runtime/errors.js';
import { Device } from '../runtime/device.js';
import { Tensor } from '../runtime/tensor.js';
import type { DecodeOptions, DecodedSpan, EncodeOptions, KVCodec, KVSpan } from './codec.js';
import { CachegenCodec } from './codecs.js';
import { PCA_LEVELS } from './levels.js';
import { CodecProfile } from './profile.js';
import { checkSpan } from './span.js';

export class PcaBasis {
  private constructor(
    readonly fingerprint: string,
    readonly nLayers: number,
    /** kvHeads x headDim: the row width the basis acts on. */
    readonly channels: number,
    readonly headDim: number,
    /** RoPE inverse frequencies [headDim / 2] (halves pairing) to take K back to position 0. */
    readonly invFreq: Float32Array,
    /** Per plane (layer * 2 + K|V): mean [channels] and basis [channels x channels], column j = component j. */
    readonly means: Float32Array[],
    readonly bases: Float32Array[],
    readonly tokens: number,
  ) {}

  get hash(): string {
    const h = createHash('sha256').update(this.fingerprint);
    for (const a of [this.invFreq, ...this.means, ...this.bases]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return h.digest('hex').slice(0, 16);
  }

  /** Bytes the basis takes stored (f32 means, bases and frequencies). */
  get byteLength(): number {
    return 4 * (this.invFreq.length + this.means.reduce((a, m) => a + m.length, 0) + this.bases.reduce((a, b) => a + b.length, 0));
  }

  /** Principal components of the spans' KV per (layer, K|V), K taken to position 0 first. */
  static build(spans: readonly KVSpan[], invFreq: Float32Array): PcaBasis {
    if (spans.length === 0) throw new ArgumentError('PcaBasis.build needs at least one span');
    const d0 = checkSpan(spans[0]!);
    const C = d0.nKvHeads * d0.headDim, P = d0.nLayers * 2;
    if (invFreq.length * 2 !== d0.headDim) throw new ShapeError(`invFreq has ${invFreq.length} entries for head_dim ${d0.headDim}`);
    const sums = Array.from({ length: P }, () => new Float64Array(C));
    const cross = Array.from({ length: P }, () => new Float64Array(C * C));
    let tokens = 0;
    for (const s of spans) {
      const d = checkSpan(s);
      if (d.nLayers !== d0.nLayers || d.nKvHeads !== d0.nKvHeads || d.headDim !== d0.headDim || s.fingerprint !== spans[0]!.fingerprint)
        throw new ArgumentError('PcaBasis.build: spans of different models or shapes');
      const x = s.kv.toFloat32();
      toPlaneRows(x, d.nLayers, d.n, C, d0.headDim, s.positions, invFreq, -1);
      for (let p = 0; p < P; p++) {
        const sum = sums[p]!, xx = cross[p]!;
        for (let t = 0; t < d.n; t++) {
          const o = (p * d.n + t) * C;
          for (let i = 0; i < C; i++) {
            const xi = x[o + i]!;
            sum[i] += xi;
            for (let j = i; j < C; j++) xx[i * C + j] += xi * x[o + j]!;
          }
        }
      }
      tokens += d.n;
    }
    const means: Float32Array[] = [], bases: Float32Array[] = [];
    for (let p = 0; p < P; p++) {
      const mu = Float64Array.from(sums[p]!, (v) => v / tokens);
      const cov = new Float64Array(C * C);
      for (let i = 0; i < C; i++) for (let j = i; j < C; j++) {
        const v = cross[p]![i * C + j]! / tokens - mu[i]! * mu[j]!;
        cov[i * C + j] = v;
        cov[j * C + i] = v;
      }
      means.push(Float32Array.from(mu));
      bases.push(Float32Array.from(eigenvectors(cov, C)));
    }
    return new PcaBasis(spans[0]!.fingerprint, d0.nLayers, C, d0.headDim, Float32Array.from(invFreq), means, bases, tokens);
  }

  /** KV [L, 2, n, C] -> coefficients (in place on a copy): K to position 0, centre, project. */
  forward(x: Float32Array, n: number, positions: Int32Array): Float32Array {
    const C = this.channels, out = new Float32Array(x.length);
    const rows = Float32Array.from(x);
    toPlaneRows(rows, this.nLayers, n, C, this.headDim, positions, this.invFreq, -1);
    for (let p = 0; p < this.nLayers * 2; p++) {
      const mu = this.means[p]!, B = this.bases[p]!;
      for (let t = 0; t < n; t++) {
        const o = (p * n + t) * C;
        for (let j = 0; j < C; j++) {
          let s = 0;
          for (let i = 0; i < C; i++) s += (rows[o + i]! - mu[i]!) * B[i * C + j]!;
          out[o + j] = s;
        }
      }
    }
    return out;
  }

  /** Coefficients -> KV (the inverse of forward). */
  inverse(y: Float32Array, n: number, positions: Int32Array): Float32Array {
    const C = this.channels, out = new Float32Array(y.length);
    for (let p = 0; p < this.nLayers * 2; p++) {
      const mu = this.means[p]!, B = this.bases[p]!;
      for (let t = 0; t < n; t++) {
        const o = (p * n + t) * C;
        for (let i = 0; i < C; i++) {
          let s = mu[i]!;
          for (let j = 0; j < C; j++) s += y[o + j]! * B[i * C + j]!;
          out[o + i] = s;
        }
      }
    }
    toPlaneRows(out, this.nLayers, n, C, this.headDim, positions, this.invFreq, +1);
    return out;
  }
}

/** Rotates every layer's K rows (plane 2l) by sign x position (halves pairing), in place. */
function toPlaneRows(x: Float32Array, L: number, n: number, C: number, D: number, positions: Int32Array, invFreq: Float32Array, sign: number): void {
  const half = D / 2;
  for (let l = 0; l < L; l++) for (let t = 0; t < n; t++) {
    const o = ((l * 2) * n + t) * C;
    for (let h = 0; h < C / D; h++) for (let i = 0; i < half; i++) {
      const th = sign * positions[t]! * invFreq[i]!, c = Math.cos(th), s = Math.sin(th);
      const a = o + h * D + i, b = a + half;
      const xa = x[a]!, xb = x[b]!;
      x[a] = xa * c - xb * s;
      x[b] = xa * s + xb * c;
    }
  }
}

/** Eigenvectors of a symmetric C x C matrix (cyclic Jacobi), columns ordered by decreasing eigenvalue. */
function eigenvectors(S: Float64Array, C: number): Float64Array {
  const A = Float64Array.from(S), V = new Float64Array(C * C);
  for (let i = 0; i < C; i++) V[i * C + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, diag = 0;
    for (let p = 0; p < C; p++) { diag += A[p * C + p]! ** 2; for (let q = p + 1; q < C; q++) off += A[p * C + q]! ** 2; }
    if (off <= 1e-24 * diag) break;
    for (let p = 0; p < C; p++) for (let q = p + 1; q < C; q++) {
      const apq = A[p * C + q]!;
      if (apq === 0) continue;
      const th = 0.5 * Math.atan2(2 * apq, A[q * C + q]! - A[p * C + p]!), c = Math.cos(th), s = Math.sin(th);
      for (let k = 0; k < C; k++) {
        const akp = A[k * C + p]!, akq = A[k * C + q]!;
        A[k * C + p] = c * akp - s * akq; A[k * C + q] = s * akp + c * akq;
      }
      for (let k = 0; k < C; k++) {
        const apk = A[p * C + k]!, aqk = A[q * C + k]!;
        A[p * C + k] = c * apk - s * aqk; A[q * C + k] = s * apk + c * aqk;
      }
      for (let k = 0; k < C; k++) {
        const vkp = V[k * C + p]!, vkq = V[k * C + q]!;
        V[k * C + p] = c * vkp - s * vkq; V[k * C + q] = s * vkp + c * vkq;
      }
    }
  }
  const order = Array.from({ length: C }, (_, i) => i).sort((a, b) => A[b * C + b]! - A[a * C + a]!);
  const out = new Float64Array(C * C);
  order.forEach((src, j) => { for (let i = 0; i < C; i++) out[i * C + j] = V[i * C + src]!; });
  return out;
}

/** The bytes in front of the inner cachegen container: magic "KVLP", version, the basis hash. */
const MAGIC = [0x4b, 0x56, 0x4c, 0x50];
const HEADER = 4 + 1 + 8;  // magic, version, the basis hash (16 hex digits = 8 bytes)
const VERSION = 1;

/**
 * `cachegen-pca`: CacheGen (with PCA_LEVELS) over the basis' coefficients. The container is a small
 * header (magic "KVLP", version, the basis hash: a container decodes only with the basis it was
 * written with) followed by the cachegen container of the coefficients. Options pass through to
 * cachegen (e.g. `profile`: a CodecProfile built with `pcaProfile`).
 */
export interface PcaCodec extends KVCodec {
  readonly basis: PcaBasis;
  /** The coefficients of a span (what the inner codec and its profiles see); the caller disposes kv. */
  coefficientSpan(span: KVSpan): KVSpan;
}

export function pcaCodec(basis: PcaBasis): PcaCodec {
  const inner = new CachegenCodec(PCA_LEVELS);
  const hash = basis.hash;
  const coefficientSpan = (span: KVSpan): KVSpan => {
    const d = checkSpan(span);
    if (span.fingerprint !== basis.fingerprint) throw new ArgumentError(`the PCA basis is for model ${basis.fingerprint}, not ${span.fingerprint}`);
    if (d.nLayers !== basis.nLayers || d.nKvHeads * d.headDim !== basis.channels || d.headDim !== basis.headDim)
      throw new ShapeError('span shape does not match the PCA basis');
    const y = basis.forward(span.kv.toFloat32(), d.n, span.positions);
    return { kv: Tensor.fromTypedArray(y, span.kv.shape), positions: span.positions, fingerprint: span.fingerprint };
  };
  return {
    name: 'cachegen-pca', levels: inner.levels, defaultLevel: inner.defaultLevel, basis, coefficientSpan,
    encode(span: KVSpan, options: EncodeOptions = {}): Uint8Array {
      const c = coefficientSpan(span);
      try {
        const body = inner.encode(c, options);
        const out = new Uint8Array(HEADER + body.length);
        out.set(MAGIC, 0);
        out[4] = VERSION;
        out.set(Buffer.from(hash, 'hex'), 5);
        out.set(body, HEADER);
        return out;
      } finally {
        c.kv.dispose();
      }
    },
    decode(bytes: Uint8Array, options: DecodeOptions = {}): DecodedSpan {
      if (!(bytes instanceof Uint8Array)) throw new ArgumentError('Expected the container as a Uint8Array');
      if (bytes.length < HEADER || MAGIC.some((b, i) => bytes[i] !== b)) throw new FormatError('not a cachegen-pca container (bad magic)');
      if (bytes[4] !== VERSION) throw new FormatError(`cachegen-pca container version ${bytes[4]}, expected ${VERSION}`);
      const got = Buffer.from(bytes.subarray(5, HEADER)).toString('hex');
      if (got !== hash) throw new ArgumentError(`the container was written with PCA basis ${got}, this codec holds ${hash}`);
      const dec = inner.decode(bytes.subarray(HEADER), { ...options, device: 'cpu', dtype: 'f32' });
      try {
        const [L, , n, h, d] = dec.kv.shape as number[];
        if (L !== basis.nLayers || h! * d! !== basis.channels) throw new FormatError('the container does not match the PCA basis');
        const x = basis.inverse(dec.kv.toTypedArray() as Float32Array, n!, dec.positions);
        const host = Tensor.fromTypedArray(x, dec.kv.shape);
        const dtype = options.dtype ?? 'f16';
        const cast = dtype === 'f32' ? host : host.cast(dtype);
        if (cast !== host) host.dispose();
        const device = Device.parse(options.device ?? 'cpu');
        const kv = device.isCuda ? cast.to(device) : cast;
        if (kv !== cast) cast.dispose();
        return { ...dec, kv, codec: 'cachegen-pca' };
      } finally {
        dec.kv.dispose();
      }
    },
  };
}

/** The inner codec's probability tables for one PCA level, from coefficient spans (`coefficientSpan`). */
export function pcaProfile(coefficientSpans: readonly KVSpan[], level: string): CodecProfile {
  return CodecProfile.build(coefficientSpans, { level, levels: PCA_LEVELS });
}
