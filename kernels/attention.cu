#include "attention.cuh"

#include <climits>

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMaxHeadDim = 256;

// Everything a path needs, by value. Scores are scale * log2(e) * q.k, so softmax uses exp2f.
// Split partials (when nsplit > 1): acc[split][row][d], m[split][row], l[split][row], row = i*hq + h,
// m the running max (log2 domain, -inf when the split saw no key), l the sum of exp2(s - m), acc the
// sum of exp2(s - m) * v.
struct Params {
  const void* q;
  const void* k;
  const void* v;
  const int32_t* qpos;
  const int32_t* kpos;
  void* out;
  float* ws_acc;
  float* ws_m;
  float* ws_l;
  int nq, nk, hq, hkv, d, group;
  float scale_log2;
  int nsplit, tiles_per_split;
};

__device__ __forceinline__ int warp_min_int(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ int warp_max_int(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Smallest position among keys [j0, j0 + n) (INT_MAX when none), computed by one warp; every warp
// that calls it gets the same value, so a CTA can branch on it uniformly.
__device__ __forceinline__ int tile_min_kpos(const int32_t* kpos, int nk, int j0, int n) {
  int mn = INT_MAX;
  for (int c = threadIdx.x & 31; c < n; c += 32)
    if (j0 + c < nk) mn = min(mn, kpos[j0 + c]);
  return warp_min_int(mn);
}

// Writes one finished row element: normalised output, or the split's unnormalised accumulator.
template <class T>
__device__ __forceinline__ void emit(const Params& p, int split, size_t row, int x, float acc, float l) {
  if (p.nsplit == 1) {
    static_cast<T*>(p.out)[row * p.d + x] = from_f32<T>(l > 0.0f ? acc / l : 0.0f);
  } else {
    p.ws_acc[(static_cast<size_t>(split) * p.nq * p.hq + row) * p.d + x] = acc;
  }
}
__device__ __forceinline__ void emit_ml(const Params& p, int split, size_t row, float m, float l) {
  if (p.nsplit > 1) {
    const size_t at = static_cast<size_t>(split) * p.nq * p.hq + row;
    p.ws_m[at] = m;
    p.ws_l[at] = l;
  }
}

// ---------------------------------------------------------------------------------------------
// decode: one CTA per (query, head, split); 128 keys per tile, one per thread for the score.
// P.V: with kVec, a thread owns a 16-byte chunk of head dims and one of G groups of threads takes
// every G-th key of the tile (four keys' loads in flight at once); otherwise threads own dim pairs.

constexpr int kDecThreads = 128;
constexpr int kDecRed = 1024;  // floats for the per-group P.V partials (G * d <= 128 * 8)

template <class T, bool kVec>
__global__ void __launch_bounds__(kDecThreads) attn_decode_kernel(Params p) {
  extern __shared__ float dsm[];
  float* qs = dsm;                   // [d], pre-scaled
  float* ps = qs + kMaxHeadDim;      // [kDecThreads] probabilities of the tile
  float* red = ps + kDecThreads;     // [kDecRed] group partials of P.V
  float* scratch = red + kDecRed;    // [33]
  constexpr int V = kVec ? kVec16<T> : 2;
  const int tid = threadIdx.x, d = p.d;
  const size_t row = blockIdx.x;
  const int i = static_cast<int>(row / p.hq), h = static_cast<int>(row % p.hq), kvh = h / p.group;
  const int split = blockIdx.y;
  const T* q = static_cast<const T*>(p.q) + row * d;
  const T* kb = static_cast<const T*>(p.k) + static_cast<size_t>(kvh) * d;
  const T* vb = static_cast<const T*>(p.v) + static_cast<size_t>(kvh) * d;
  const size_t kvstride = static_cast<size_t>(p.hkv) * d;
  for (int x = tid; x < d; x += kDecThreads) qs[x] = to_f32(q[x]) * p.scale_log2;
  const int qp = p.qpos[i];

  const int chunks = (d + V - 1) / V, G = kDecThreads / chunks > 0 ? kDecThreads / chunks : 1;
  const int grp = tid / chunks, x0 = (tid % chunks) * V;
  const bool pv = grp < G;

  const int span = p.tiles_per_split * kDecThreads;
  const int jb = split * span, je = min(jb + span, p.nk);
  float m = -INFINITY, l = 0.0f, acc[V];
#pragma unroll
  for (int e = 0; e < V; ++e) acc[e] = 0.0f;
  __syncthreads();
  for (int j0 = jb; j0 < je; j0 += kDecThreads) {
    const int j = j0 + tid;
    float s = -INFINITY;
    if (j < je && p.kpos[j] <= qp) {
      const T* kr = kb + static_cast<size_t>(j) * kvstride;
      float dot = 0.0f;
      if (kVec) {
        for (int x = 0; x < d; x += V) {
          float kv[V];
          load16(kr + x, kv);
          float part = 0.0f;
#pragma unroll
          for (int e = 0; e < V; ++e) part += qs[x + e] * kv[e];
          dot += part;
        }
      } else {
        for (int x = 0; x < d; ++x) dot += qs[x] * to_f32(kr[x]);
      }
      s = dot;
    }
    const float tmax = block_max(s, scratch);
    if (tmax == -INFINITY) continue;  // uniform: no key of this tile is visible
    const float mn = fmaxf(m, tmax);
    const float alpha = exp2f(m - mn);  // m == -inf -> 0
    const float pj = s == -INFINITY ? 0.0f : exp2f(s - mn);
    ps[tid] = pj;
    l = l * alpha + block_sum(pj, scratch);  // its barriers publish ps
    m = mn;
#pragma unroll
    for (int e = 0; e < V; ++e) acc[e] *= alpha;
    if (!pv) continue;
    const int n = min(kDecThreads, je - j0);
    for (int kk = grp; kk < n; kk += 4 * G) {
      float pk[4], vv[4][V];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int key = kk + u * G;
        pk[u] = key < n ? ps[key] : 0.0f;
        if (pk[u] == 0.0f) continue;
        const T* vr = vb + static_cast<size_t>(j0 + key) * kvstride + x0;
        if (kVec) {
          load16(vr, vv[u]);
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) vv[u][e] = x0 + e < d ? to_f32(vr[e]) : 0.0f;
        }
      }
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (pk[u] != 0.0f) {
#pragma unroll
          for (int e = 0; e < V; ++e) acc[e] += pk[u] * vv[u][e];
        }
    }
  }
  // Combine the G groups in a fixed order.
  __syncthreads();
  if (pv) {
#pragma unroll
    for (int e = 0; e < V; ++e)
      if (x0 + e < d) red[grp * d + x0 + e] = acc[e];
  }
  __syncthreads();
  for (int x = tid; x < d; x += kDecThreads) {
    float sum = 0.0f;
    for (int gi = 0; gi < G; ++gi) sum += red[gi * d + x];
    emit<T>(p, split, row, x, sum, l);
  }
  if (tid == 0) emit_ml(p, split, row, m, l);
}

size_t decode_smem_bytes() { return (kMaxHeadDim + kDecThreads + kDecRed + 33) * sizeof(float); }

// ---------------------------------------------------------------------------------------------
// tiled f32: one CTA per (32 queries, head, split); 32 keys per tile; thread (row = tid / 4,
// sub = tid % 4) scores keys sub + 4c and accumulates head dims sub + 4e.

constexpr int kTQ = 32, kTK = 32, kTThreads = 128;

size_t tiled_smem_bytes(int d) {
  return (static_cast<size_t>(kTQ) * (d + 1) + static_cast<size_t>(kTK) * (d + 1) + static_cast<size_t>(kTK) * d +
          kTQ * (kTK + 1)) * sizeof(float) + kTK * sizeof(int);
}

template <class T, int kAcc>  // kAcc >= ceil(d / 4)
__global__ void __launch_bounds__(kTThreads) attn_tiled_kernel(Params p) {
  extern __shared__ float tsm[];
  const int d = p.d, ldq = d + 1;
  float* Qs = tsm;                  // [kTQ][d + 1]
  float* Ks = Qs + kTQ * ldq;       // [kTK][d + 1]
  float* Vs = Ks + kTK * ldq;       // [kTK][d]
  float* Ps = Vs + kTK * d;         // [kTQ][kTK + 1]
  int* kps = reinterpret_cast<int*>(Ps + kTQ * (kTK + 1));  // [kTK]
  __shared__ int qmax_w[kTThreads / 32];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, r = tid >> 2, sub = tid & 3;
  const int i0 = blockIdx.x * kTQ, h = blockIdx.y, split = blockIdx.z, kvh = h / p.group;
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const size_t qstride = static_cast<size_t>(p.hq) * d, kvstride = static_cast<size_t>(p.hkv) * d;

  const int i = i0 + r;
  const int qp = i < p.nq ? p.qpos[i] : INT_MIN;
  const int wmax = warp_max_int(qp);
  if (lane == 0) qmax_w[warp] = wmax;
  for (int e = tid; e < kTQ * d; e += kTThreads) {
    const int rr = e / d, x = e - rr * d;
    const size_t at = static_cast<size_t>(i0 + rr) * qstride + static_cast<size_t>(h) * d + x;
    Qs[rr * ldq + x] = i0 + rr < p.nq ? to_f32(q[at]) * p.scale_log2 : 0.0f;
  }
  __syncthreads();
  int cmax = qmax_w[0];
  for (int w = 1; w < kTThreads / 32; ++w) cmax = max(cmax, qmax_w[w]);

  float acc[kAcc];
#pragma unroll
  for (int e = 0; e < kAcc; ++e) acc[e] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  const int ntiles = (p.nk + kTK - 1) / kTK;
  const int tb = split * p.tiles_per_split, te = min(tb + p.tiles_per_split, ntiles);
  for (int t = tb; t < te; ++t) {
    const int j0 = t * kTK;
    if (tile_min_kpos(p.kpos, p.nk, j0, kTK) > cmax) continue;  // uniform over the CTA
    __syncthreads();  // the previous tile's readers are done
    for (int e = tid; e < kTK * d; e += kTThreads) {
      const int kk = e / d, x = e - kk * d;
      const bool ok = j0 + kk < p.nk;
      const size_t at = static_cast<size_t>(j0 + kk) * kvstride + static_cast<size_t>(kvh) * d + x;
      Ks[kk * ldq + x] = ok ? to_f32(k[at]) : 0.0f;
      Vs[kk * d + x] = ok ? to_f32(v[at]) : 0.0f;
    }
    if (tid < kTK) kps[tid] = j0 + tid < p.nk ? p.kpos[j0 + tid] : INT_MAX;
    __syncthreads();

    float s[kTK / 4];
#pragma unroll
    for (int c = 0; c < kTK / 4; ++c) s[c] = 0.0f;
    const float* qr = Qs + r * ldq;
    for (int x = 0; x < d; ++x) {
      const float qx = qr[x];
#pragma unroll
      for (int c = 0; c < kTK / 4; ++c) s[c] += qx * Ks[(sub + 4 * c) * ldq + x];
    }
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < kTK / 4; ++c) {
      if (!(kps[sub + 4 * c] <= qp)) s[c] = -INFINITY;
      mx = fmaxf(mx, s[c]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mn = fmaxf(m, mx);
    const float alpha = mn == -INFINITY ? 1.0f : exp2f(m - mn);
    float rs = 0.0f;
#pragma unroll
    for (int c = 0; c < kTK / 4; ++c) {
      const float pc = s[c] == -INFINITY ? 0.0f : exp2f(s[c] - mn);
      Ps[r * (kTK + 1) + sub + 4 * c] = pc;
      rs += pc;
    }
    rs += __shfl_xor_sync(0xffffffffu, rs, 1);
    rs += __shfl_xor_sync(0xffffffffu, rs, 2);
    l = l * alpha + rs;
    m = mn;
    __syncwarp();  // a row's P is written and read by the same 4 lanes
#pragma unroll
    for (int e = 0; e < kAcc; ++e) acc[e] *= alpha;
    for (int kk = 0; kk < kTK; ++kk) {
      const float pk = Ps[r * (kTK + 1) + kk];
      const float* vr = Vs + kk * d;
#pragma unroll
      for (int e = 0; e < kAcc; ++e) {
        const int x = sub + 4 * e;
        if (x < d) acc[e] += pk * vr[x];
      }
    }
  }
  if (i < p.nq) {
    const size_t row = static_cast<size_t>(i) * p.hq + h;
#pragma unroll
    for (int e = 0; e < kAcc; ++e) {
      const int x = sub + 4 * e;
      if (x < d) emit<T>(p, split, row, x, acc[e], l);
    }
    if (sub == 0) emit_ml(p, split, row, m, l);
  }
}

// ---------------------------------------------------------------------------------------------
// tensor core (sm_80+): one CTA of 4 warps per (64 queries, head, split).

constexpr int kTcThreads = 128, kTcBM = 64;

template <int D> struct TcShape {
  static constexpr int BN = D <= 128 ? 64 : 32;  // keys per tile
  static constexpr int LD = D + 8;               // padded row (elements): ldmatrix rows hit distinct banks
  static constexpr size_t smem(size_t elem) {
    return static_cast<size_t>(kTcBM + 2 * BN) * LD * elem + BN * sizeof(int);
  }
};

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// 16-byte global -> shared copy; with valid == false the destination is zero-filled.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldsm_x4_t(unsigned (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

// c += a (16x16, row) * b (16x8, col), f32 accumulators.
template <class T> __device__ __forceinline__ void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                                            unsigned b1);
template <> __device__ __forceinline__ void mma16816<__half>(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                                             unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const unsigned (&a)[4],
                                                                    unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as one register of two 16-bit elements (lo in the low half: the lower column).
template <class T> __device__ __forceinline__ unsigned pack2(float lo, float hi);
template <> __device__ __forceinline__ unsigned pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<unsigned*>(&v);
}
template <> __device__ __forceinline__ unsigned pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<unsigned*>(&v);
}

// Rows [0, R) of a tile into padded shared memory, rows >= valid zero-filled; 16 bytes a copy.
template <class T, int D, int R>
__device__ __forceinline__ void tc_load_rows(T* dst, const T* src, size_t stride, int valid) {
  constexpr int kChunks = D / 8, LD = TcShape<D>::LD;
  for (int c = threadIdx.x; c < R * kChunks; c += kTcThreads) {
    const int r = c / kChunks, x = (c - r * kChunks) * 8;
    const bool ok = r < valid;
    cp_async16(dst + r * LD + x, ok ? src + static_cast<size_t>(r) * stride + x : src, ok);
  }
}

template <class T, int D>
__global__ void __launch_bounds__(kTcThreads) attn_tc_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using S = TcShape<D>;
  constexpr int BN = S::BN, LD = S::LD, NT = BN / 8, DT = D / 8;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  T* Qs = reinterpret_cast<T*>(tc_smem);
  T* Ks = Qs + kTcBM * LD;
  T* Vs = Ks + BN * LD;
  int* kps = reinterpret_cast<int*>(Vs + BN * LD);
  __shared__ int qmax_w[kTcThreads / 32];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const int i0 = blockIdx.x * kTcBM, h = blockIdx.y, split = blockIdx.z, kvh = h / p.group;
  const T* q = static_cast<const T*>(p.q);
  const T* kb = static_cast<const T*>(p.k) + static_cast<size_t>(kvh) * D;
  const T* vb = static_cast<const T*>(p.v) + static_cast<size_t>(kvh) * D;
  const size_t qstride = static_cast<size_t>(p.hq) * D, kvstride = static_cast<size_t>(p.hkv) * D;

  const int ra = i0 + warp * 16 + g, rb = ra + 8;
  const int qpa = ra < p.nq ? p.qpos[ra] : INT_MIN, qpb = rb < p.nq ? p.qpos[rb] : INT_MIN;
  const int wmax = warp_max_int(max(qpa, qpb));
  if (lane == 0) qmax_w[warp] = wmax;

  tc_load_rows<T, D, kTcBM>(Qs, q + static_cast<size_t>(i0) * qstride + static_cast<size_t>(h) * D, qstride,
                            p.nq - i0);
  cp_async_commit();
  __syncthreads();
  int cmax = qmax_w[0];
#pragma unroll
  for (int w = 1; w < kTcThreads / 32; ++w) cmax = max(cmax, qmax_w[w]);

  const int ntiles = (p.nk + BN - 1) / BN;
  const int tb = split * p.tiles_per_split, te = min(tb + p.tiles_per_split, ntiles);
  // The next tile at or after t with a key visible to some query of the CTA (te when none).
  auto next_tile = [&](int t, int* tmin) {
    for (; t < te; ++t) {
      *tmin = tile_min_kpos(p.kpos, p.nk, t * BN, BN);
      if (*tmin <= cmax) return t;
    }
    return te;
  };
  auto load_k = [&](int t) {
    const int j0 = t * BN;
    tc_load_rows<T, D, BN>(Ks, kb + static_cast<size_t>(j0) * kvstride, kvstride, p.nk - j0);
    for (int c = tid; c < BN; c += kTcThreads) cp_async4(kps + c, p.kpos + (j0 + c < p.nk ? j0 + c : 0), j0 + c < p.nk);
  };
  auto load_v = [&](int t) {
    const int j0 = t * BN;
    tc_load_rows<T, D, BN>(Vs, vb + static_cast<size_t>(j0) * kvstride, kvstride, p.nk - j0);
  };

  float o[DT][4];
#pragma unroll
  for (int a = 0; a < DT; ++a)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[a][e] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

  int cur_min = INT_MAX;
  int cur = next_tile(tb, &cur_min);
  if (cur < te) {
    load_k(cur);
    cp_async_commit();
    load_v(cur);
    cp_async_commit();
  }
  while (cur < te) {
    cp_async_wait<1>();  // Q, K and kpos of `cur` have landed (V may still be in flight)
    __syncthreads();
    const bool active = cur_min <= wmax;  // some key of the tile is visible to this warp's rows
    const int j0 = cur * BN;
    float s[NT][4];
    if (active) {
#pragma unroll
      for (int a = 0; a < NT; ++a)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[a][e] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) {
        unsigned a[4];
        ldsm_x4(a, Qs + (warp * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          unsigned b[4];
          ldsm_x4(b, Ks + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + ks * 16 + ((lane >> 3) & 1) * 8);
          mma16816<T>(s[2 * np], a, b[0], b[1]);
          mma16816<T>(s[2 * np + 1], a, b[2], b[3]);
        }
      }
      // Mask, scale, online softmax. Element e of n-tile a: row g (e < 2) or g + 8, key a*8 + 2tq + (e & 1).
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int a = 0; a < NT; ++a)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = a * 8 + 2 * tq + (e & 1);
          const bool vis = j0 + col < p.nk && kps[col] <= (e < 2 ? qpa : qpb);
          s[a][e] = vis ? s[a][e] * p.scale_log2 : -INFINITY;
          if (e < 2) mx0 = fmaxf(mx0, s[a][e]);
          else mx1 = fmaxf(mx1, s[a][e]);
        }
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
      const float al0 = n0 == -INFINITY ? 1.0f : exp2f(m0 - n0);
      const float al1 = n1 == -INFINITY ? 1.0f : exp2f(m1 - n1);
      float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
      for (int a = 0; a < NT; ++a)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float v = s[a][e];
          const float pe = v == -INFINITY ? 0.0f : exp2f(v - (e < 2 ? n0 : n1));
          s[a][e] = pe;
          if (e < 2) rs0 += pe;
          else rs1 += pe;
        }
      l0 = l0 * al0 + rs0;  // per-thread partial row sums; the 4 lanes of a row are added at the end
      l1 = l1 * al1 + rs1;
      m0 = n0;
      m1 = n1;
#pragma unroll
      for (int a = 0; a < DT; ++a) {
        o[a][0] *= al0;
        o[a][1] *= al0;
        o[a][2] *= al1;
        o[a][3] *= al1;
      }
    }
    __syncthreads();  // every warp is done with K and kpos of `cur`
    int nxt_min = INT_MAX;
    const int nxt = next_tile(cur + 1, &nxt_min);
    if (nxt < te) load_k(nxt);
    cp_async_commit();
    cp_async_wait<1>();  // V of `cur` has landed
    __syncthreads();
    if (active) {
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        unsigned a[4];
        a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
        a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
        a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          unsigned b[4];
          ldsm_x4_t(b, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
          mma16816<T>(o[2 * dp], a, b[0], b[1]);
          mma16816<T>(o[2 * dp + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with V of `cur`
    if (nxt < te) load_v(nxt);
    cp_async_commit();
    cur = nxt;
    cur_min = nxt_min;
  }
  cp_async_wait<0>();

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const size_t rows = static_cast<size_t>(p.nq) * p.hq;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int i = half == 0 ? ra : rb;
    if (i >= p.nq) continue;
    const float l = half == 0 ? l0 : l1, m = half == 0 ? m0 : m1;
    const size_t row = static_cast<size_t>(i) * p.hq + h;
    if (p.nsplit == 1) {
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      unsigned* dst = reinterpret_cast<unsigned*>(static_cast<T*>(p.out) + row * D);
#pragma unroll
      for (int a = 0; a < DT; ++a)
        dst[(a * 8 + 2 * tq) / 2] = pack2<T>(o[a][2 * half] * inv, o[a][2 * half + 1] * inv);
    } else {
      float2* dst = reinterpret_cast<float2*>(p.ws_acc + (static_cast<size_t>(split) * rows + row) * D);
#pragma unroll
      for (int a = 0; a < DT; ++a) dst[(a * 8 + 2 * tq) / 2] = make_float2(o[a][2 * half], o[a][2 * half + 1]);
      if (tq == 0) emit_ml(p, split, row, m, l);
    }
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// combine: out = sum_s w_s acc_s / sum_s w_s l_s with w_s = exp2(m_s - max_s m_s), splits in order.

template <class T>
__global__ void attn_combine_kernel(Params p) {
  const size_t rows = static_cast<size_t>(p.nq) * p.hq;
  for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
    float mx = -INFINITY;
    for (int s = 0; s < p.nsplit; ++s) mx = fmaxf(mx, p.ws_m[s * rows + row]);
    float l = 0.0f;
    for (int s = 0; s < p.nsplit; ++s) {
      const float ms = p.ws_m[s * rows + row];
      if (ms != -INFINITY) l += exp2f(ms - mx) * p.ws_l[s * rows + row];
    }
    for (int x = threadIdx.x; x < p.d; x += blockDim.x) {
      float acc = 0.0f;
      for (int s = 0; s < p.nsplit; ++s) {
        const float ms = p.ws_m[s * rows + row];
        if (ms != -INFINITY) acc += exp2f(ms - mx) * p.ws_acc[(s * rows + row) * p.d + x];
      }
      static_cast<T*>(p.out)[row * p.d + x] = from_f32<T>(l > 0.0f ? acc / l : 0.0f);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// planning and launch

enum class Path { Decode, Tiled, TensorCore };

struct Plan {
  Path path;
  int nsplit, tiles_per_split;
  unsigned blocks;   // CTAs before splitting
  size_t workspace;  // bytes, 0 when nsplit == 1
  size_t smem;
};

constexpr size_t kMaxWorkspace = size_t(256) << 20;

bool tc_head_dim(size_t d) { return d == 32 || d == 64 || d == 80 || d == 96 || d == 128 || d == 256; }

size_t tc_smem_bytes(size_t d, size_t elem) {
  switch (d) {
    case 32: return TcShape<32>::smem(elem);
    case 64: return TcShape<64>::smem(elem);
    case 80: return TcShape<80>::smem(elem);
    case 96: return TcShape<96>::smem(elem);
    case 128: return TcShape<128>::smem(elem);
    default: return TcShape<256>::smem(elem);
  }
}

cudaError_t make_plan(const AttentionArgs& a, Plan* plan) {
  int sms = 0, optin = 0, cc = 0;
  cudaError_t err = current_device_limits(&sms, &optin, &cc);
  if (err != cudaSuccess) return err;
  const bool half = a.dtype == kF16 || a.dtype == kBF16;
  const bool tc = half && cc >= 8 && tc_head_dim(a.d) && aligned_to(a.q, 16) && aligned_to(a.k, 16) &&
                  aligned_to(a.v, 16) && aligned_to(a.out, 4) && tc_smem_bytes(a.d, 2) <= static_cast<size_t>(optin);
  const bool tiled_fits = tiled_smem_bytes(static_cast<int>(a.d)) <= static_cast<size_t>(optin);
  Plan pl{};
  int tile_keys, min_tiles, per_sm = 2;
  if (a.nq <= (tc ? 4u : 16u) || (!tc && !tiled_fits)) {
    pl.path = Path::Decode;
    pl.blocks = static_cast<unsigned>(a.nq * a.hq);
    pl.smem = decode_smem_bytes();
    tile_keys = kDecThreads;
    min_tiles = 2;
    per_sm = 4;
  } else if (tc) {
    pl.path = Path::TensorCore;
    pl.blocks = static_cast<unsigned>((a.nq + kTcBM - 1) / kTcBM * a.hq);
    pl.smem = tc_smem_bytes(a.d, 2);
    tile_keys = a.d <= 128 ? 64 : 32;
    min_tiles = 4;
  } else {
    pl.path = Path::Tiled;
    pl.blocks = static_cast<unsigned>((a.nq + kTQ - 1) / kTQ * a.hq);
    pl.smem = tiled_smem_bytes(static_cast<int>(a.d));
    tile_keys = kTK;
    min_tiles = 4;
  }
  const int ntiles = static_cast<int>((a.nk + tile_keys - 1) / tile_keys);
  int nsplit = 1;
  const unsigned target = static_cast<unsigned>(per_sm) * static_cast<unsigned>(sms > 0 ? sms : 1);
  if (pl.blocks < target) {
    const size_t per_split = a.nq * a.hq * (a.d + 2) * sizeof(float);
    const long long by_work = ntiles / min_tiles, by_memory = static_cast<long long>(kMaxWorkspace / per_split);
    long long want = (target + pl.blocks - 1) / pl.blocks;
    want = want < by_work ? want : by_work;
    want = want < by_memory ? want : by_memory;
    want = want < 65535 ? want : 65535;
    nsplit = want > 1 ? static_cast<int>(want) : 1;
  }
  pl.tiles_per_split = (ntiles + nsplit - 1) / nsplit;
  pl.nsplit = (ntiles + pl.tiles_per_split - 1) / pl.tiles_per_split;
  pl.workspace = pl.nsplit > 1 ? static_cast<size_t>(pl.nsplit) * a.nq * a.hq * (a.d + 2) * sizeof(float) : 0;
  *plan = pl;
  return cudaSuccess;
}

bool valid_args(const AttentionArgs& a) {
  return (a.dtype == kF32 || a.dtype == kF16 || a.dtype == kBF16) && a.q && a.k && a.v && a.qpos && a.kpos &&
         a.out && a.hq > 0 && a.hkv > 0 && a.hq % a.hkv == 0 && a.d > 0 && a.d <= kMaxHeadDim && a.hq <= 65535 &&
         a.nq <= INT_MAX && a.nk <= INT_MAX && a.nq * a.hq <= INT_MAX;
}

template <class T, int D>
cudaError_t launch_tc(const Params& p, const Plan& pl, cudaStream_t stream) {
  auto kernel = attn_tc_kernel<T, D>;
  cudaError_t e = ensure_smem_limit(kernel, pl.smem);
  if (e != cudaSuccess) return e;
  dim3 grid(static_cast<unsigned>((p.nq + kTcBM - 1) / kTcBM), static_cast<unsigned>(p.hq),
            static_cast<unsigned>(p.nsplit));
  kernel<<<grid, kTcThreads, pl.smem, stream>>>(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_tiled(const Params& p, const Plan& pl, cudaStream_t stream) {
  auto pick = [&]() {
    if (p.d <= 32) return attn_tiled_kernel<T, 8>;
    if (p.d <= 64) return attn_tiled_kernel<T, 16>;
    if (p.d <= 128) return attn_tiled_kernel<T, 32>;
    return attn_tiled_kernel<T, 64>;
  };
  auto kernel = pick();
  cudaError_t e = ensure_smem_limit(kernel, pl.smem);
  if (e != cudaSuccess) return e;
  dim3 grid(static_cast<unsigned>((p.nq + kTQ - 1) / kTQ), static_cast<unsigned>(p.hq),
            static_cast<unsigned>(p.nsplit));
  kernel<<<grid, kTThreads, pl.smem, stream>>>(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_decode(const Params& p, const Plan& pl, bool vec, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(static_cast<size_t>(p.nq) * p.hq), static_cast<unsigned>(p.nsplit));
  if (vec) attn_decode_kernel<T, true><<<grid, kDecThreads, pl.smem, stream>>>(p);
  else attn_decode_kernel<T, false><<<grid, kDecThreads, pl.smem, stream>>>(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_path(const Params& p, const Plan& pl, cudaStream_t stream) {
  cudaError_t e = cudaSuccess;
  if (pl.path == Path::Decode) {
    const bool vec = p.d % kVec16<T> == 0 && aligned_to(p.k, 16) && aligned_to(p.v, 16);
    e = launch_decode<T>(p, pl, vec, stream);
  } else if (pl.path == Path::Tiled) {
    e = launch_tiled<T>(p, pl, stream);
  } else {
    if constexpr (sizeof(T) == 2) {
      switch (p.d) {
        case 32: e = launch_tc<T, 32>(p, pl, stream); break;
        case 64: e = launch_tc<T, 64>(p, pl, stream); break;
        case 80: e = launch_tc<T, 80>(p, pl, stream); break;
        case 96: e = launch_tc<T, 96>(p, pl, stream); break;
        case 128: e = launch_tc<T, 128>(p, pl, stream); break;
        default: e = launch_tc<T, 256>(p, pl, stream); break;
      }
    } else {
      e = cudaErrorInvalidValue;
    }
  }
  if (e != cudaSuccess || p.nsplit == 1) return e;
  const size_t rows = static_cast<size_t>(p.nq) * p.hq;
  const unsigned grid = static_cast<unsigned>(rows < 65535u * 16u ? rows : 65535u * 16u);
  attn_combine_kernel<T><<<grid, 128, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

size_t attention_workspace_bytes(const AttentionArgs& a) {
  if (!valid_args(a) || a.nq == 0 || a.nk == 0) return 0;
  Plan pl{};
  if (make_plan(a, &pl) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return pl.workspace;
}

cudaError_t attention(const AttentionArgs& a, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (!valid_args(a)) return cudaErrorInvalidValue;
  if (a.nq == 0) return cudaSuccess;
  const size_t elem = a.dtype == kF32 ? 4 : 2;
  if (a.nk == 0) return cudaMemsetAsync(a.out, 0, a.nq * a.hq * a.d * elem, stream);
  Plan pl{};
  cudaError_t e = make_plan(a, &pl);
  if (e != cudaSuccess) return e;
  if (pl.nsplit > 1 && (!workspace || workspace_bytes < pl.workspace || !aligned_to(workspace, 16))) {
    // No room for partials: one split covering every key tile.
    const int ntiles = pl.tiles_per_split * pl.nsplit;
    pl.tiles_per_split = ntiles;
    pl.nsplit = 1;
    pl.workspace = 0;
  }
  Params p{};
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.qpos = a.qpos;
  p.kpos = a.kpos;
  p.out = a.out;
  p.nq = static_cast<int>(a.nq);
  p.nk = static_cast<int>(a.nk);
  p.hq = static_cast<int>(a.hq);
  p.hkv = static_cast<int>(a.hkv);
  p.d = static_cast<int>(a.d);
  p.group = static_cast<int>(a.hq / a.hkv);
  p.scale_log2 = a.scale * kLog2e;
  p.nsplit = pl.nsplit;
  p.tiles_per_split = pl.tiles_per_split;
  if (pl.nsplit > 1) {
    const size_t rows = a.nq * a.hq;
    p.ws_acc = static_cast<float*>(workspace);
    p.ws_m = p.ws_acc + static_cast<size_t>(pl.nsplit) * rows * a.d;
    p.ws_l = p.ws_m + static_cast<size_t>(pl.nsplit) * rows;
  }
  return dispatch_float(a.dtype, [&](auto tag) { return launch_path<decltype(tag)>(p, pl, stream); });
}

}  // namespace kvk
