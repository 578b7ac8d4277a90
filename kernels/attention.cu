#include "attention.cuh"

#include <climits>
#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "elem.cuh"
#include "pdl.cuh"

namespace kvk {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMaxHeadDim = 256;
constexpr size_t kMaxKeys = INT_MAX - (1 << 20);  // key loops step past nk in int arithmetic

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
  const int2* tile_kpos;  // (min, max) position of each key tile of the tensor-core path, or null
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
// decode, grouped: one CTA per (query, kv head, split) serves the kv head's G query heads, so each
// K/V row is read once for all of them (the per-head CTAs above read it G times, and a thread's
// whole-row dot product kept one key's loads in flight at a time: 31 us a layer for a 7B decode
// step at 1024 keys on an H100; with this kernel 32 layers of a decode step took 7.07 ms, 7.66
// before, in one call; 6.88 now with the layer's kernels chained by PDL, pdl.cuh). A key row of D halves is spread over D / 8 lanes (16 bytes each);
// a warp takes 32 / (D / 8) keys a step and every lane keeps U steps of K and V loads in flight.
// Each lane group keeps its own running max, sum and accumulator (online softmax over its keys);
// the CTA merges them in a fixed order, and splits are merged by attn_combine_kernel.

constexpr int kDgThreads = 128, kDgTileKeys = 32, kDgSteps = 4;

template <class T, int D, int G>
__global__ void __launch_bounds__(kDgThreads) attn_decode_group_kernel(Params p) {
  constexpr int V = 8, LPK = D / V, KPW = 32 / LPK, NW = kDgThreads / 32, S = NW * KPW;
  constexpr int U = G >= 8 ? kDgSteps / 2 : kDgSteps;  // registers: G * (2V + U) floats of state
  static_assert(sizeof(T) == 2 && D % V == 0 && 32 % LPK == 0, "16-byte chunks of a 2-byte type");
  __shared__ float s_acc[S][G][D];
  __shared__ float s_m[S][G], s_l[S][G];
  allow_dependents();
  wait_for_previous();  // q and the cache rows come from the kernels before (PDL launch)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / LPK, x0 = (lane % LPK) * V, state = warp * KPW + sub;
  const int i = blockIdx.x / p.hkv, kvh = blockIdx.x % p.hkv, split = blockIdx.y;
  const size_t row0 = static_cast<size_t>(i) * p.hq + static_cast<size_t>(kvh) * G;
  const int qp = p.qpos[i];
  float q[G][V];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    load16(static_cast<const T*>(p.q) + (row0 + g) * D + x0, q[g]);
#pragma unroll
    for (int e = 0; e < V; ++e) q[g][e] *= p.scale_log2;
  }
  const size_t kvstride = static_cast<size_t>(p.hkv) * D;
  const T* kb = static_cast<const T*>(p.k) + static_cast<size_t>(kvh) * D + x0;
  const T* vb = static_cast<const T*>(p.v) + static_cast<size_t>(kvh) * D + x0;
  const int span = p.tiles_per_split * kDgTileKeys;
  const int jb = split * span, je = min(jb + span, p.nk);
  float m[G], l[G], acc[G][V];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < V; ++e) acc[g][e] = 0.0f;
  }
  constexpr int kStride = NW * KPW;  // keys between a lane group's successive keys
  // The trip count is the warp's, not the lane group's: every lane takes part in the shuffles.
  for (int w0 = jb + warp * KPW; w0 < je; w0 += U * kStride) {
    uint4 kr[U], vr[U];
    bool vis[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = w0 + sub + u * kStride;
      vis[u] = j < je;
      if (vis[u]) {
        kr[u] = *reinterpret_cast<const uint4*>(kb + static_cast<size_t>(j) * kvstride);
        vr[u] = *reinterpret_cast<const uint4*>(vb + static_cast<size_t>(j) * kvstride);
        vis[u] = p.kpos[j] <= qp;
      } else {
        kr[u] = vr[u] = make_uint4(0, 0, 0, 0);
      }
    }
    float s[U][G];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[V];
      unpack16<T>(kr[u], kf);  // garbage when !vis: its score is discarded below
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < V; ++e) dot = fmaf(q[g][e], kf[e], dot);
        s[u][g] = dot;
      }
    }
    // Sum each score over the key's LPK lanes (all lanes of the warp take part).
#pragma unroll
    for (int off = LPK / 2; off > 0; off >>= 1)
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int g = 0; g < G; ++g) s[u][g] += __shfl_xor_sync(0xffffffffu, s[u][g], off);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (vis[u]) mx = fmaxf(mx, s[u][g]);
      if (mx == -INFINITY) continue;  // nothing visible yet for this lane group
      const float alpha = exp2f(m[g] - mx);
      l[g] *= alpha;
#pragma unroll
      for (int e = 0; e < V; ++e) acc[g][e] *= alpha;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (!vis[u]) continue;
        const float pj = exp2f(s[u][g] - mx);
        float vf[V];
        unpack16<T>(vr[u], vf);
        l[g] += pj;
#pragma unroll
        for (int e = 0; e < V; ++e) acc[g][e] = fmaf(pj, vf[e], acc[g][e]);
      }
      m[g] = mx;
    }
  }
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int e = 0; e < V; ++e) s_acc[state][g][x0 + e] = acc[g][e];
    if (x0 == 0) {
      s_m[state][g] = m[g];
      s_l[state][g] = l[g];
    }
  }
  __syncthreads();
  // Merge the S lane groups' states, in state order, for every (head, dim) of the CTA.
  for (int t = threadIdx.x; t < G * D; t += kDgThreads) {
    const int g = t / D, x = t % D;
    float mx = -INFINITY;
    for (int st = 0; st < S; ++st) mx = fmaxf(mx, s_m[st][g]);
    float a = 0.0f, lsum = 0.0f;
    if (mx != -INFINITY) {
      for (int st = 0; st < S; ++st) {
        const float ms = s_m[st][g];
        if (ms == -INFINITY) continue;
        const float w = exp2f(ms - mx);
        a = fmaf(w, s_acc[st][g][x], a);
        lsum = fmaf(w, s_l[st][g], lsum);
      }
    }
    emit<T>(p, split, row0 + g, x, a, lsum);
    if (x == 0) emit_ml(p, split, row0 + g, mx, lsum);
  }
}

// Head dims and group sizes the grouped decode kernel is built for.
bool decode_group_fits(size_t d, size_t group) {
  return (d == 64 || d == 128) && (group == 1 || group == 2 || group == 4 || group == 8);
}

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
// tensor core (sm_80+): one CTA of 4 warps per (BM queries, head, split), BM = 64 * MT; warp w owns
// the 16 * MT query rows [w * 16 * MT, (w + 1) * 16 * MT) of the block (MT m16 tiles, so every K or V
// fragment read from shared memory feeds MT products). Key tiles of BN are double-buffered: the
// copy of the next visible tile (K, V and its positions) is issued right after the one barrier of
// an iteration and lands while the current tile is computed.

constexpr int kTcWarps = 4, kTcThreads = 32 * kTcWarps;

template <int D, int MT> struct TcShape {
  static constexpr int BM = kTcWarps * 16 * MT;    // queries per CTA
  static constexpr int BN = D <= 128 ? 64 : 32;     // keys per tile
  static constexpr int LD = D + 8;                 // padded row (elements): ldmatrix rows hit distinct banks
  static constexpr int kStage = 2 * BN * LD;       // K then V of one tile, elements
  static constexpr size_t smem(size_t elem) {
    return (static_cast<size_t>(BM) * LD + 2 * static_cast<size_t>(kStage)) * elem + 2 * BN * sizeof(int);
  }
};

// Query rows a warp owns: 32 for head dims up to 128 (two m16 tiles; halves the shared-memory reads
// per product), 16 for d = 256 (its f32 accumulators would not fit twice) and for short query
// blocks (nq <= 64, where 128-row blocks would mostly compute padding).
inline int tc_mtiles(size_t d, size_t nq) { return d <= 128 && nq > 64 ? 2 : 1; }

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
// 2^x on the special-function unit (flushes denormal results to zero; 2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
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
  constexpr int kChunks = D / 8, LD = D + 8;
#pragma unroll 4
  for (int c = threadIdx.x; c < R * kChunks; c += kTcThreads) {
    const int r = c / kChunks, x = (c - r * kChunks) * 8;
    const bool ok = r < valid;
    cp_async16(dst + r * LD + x, ok ? src + static_cast<size_t>(r) * stride + x : src, ok);
  }
}

// Smallest and largest position of the keys of tile t (tiles of bn keys): from the pre-pass when
// the launcher had workspace for it, else read here (by one thread).
__device__ __forceinline__ int2 key_tile_range(const Params& p, int t, int bn) {
  if (p.tile_kpos) return p.tile_kpos[t];
  int mn = INT_MAX, mx = INT_MIN;
  for (int j = t * bn, e = min(j + bn, p.nk); j < e; ++j) {
    const int k = p.kpos[j];
    mn = min(mn, k);
    mx = max(mx, k);
  }
  return make_int2(mn, mx);
}

// Pre-pass: one warp per tile of bn keys writes (min, max) of their positions.
__global__ void attn_key_tile_range_kernel(const int32_t* kpos, int nk, int bn, int ntiles, int2* out) {
  const int t = static_cast<int>((static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5);
  const int lane = threadIdx.x & 31;
  if (t >= ntiles) return;  // whole warps
  int mn = INT_MAX, mx = INT_MIN;
  for (int c = lane, j0 = t * bn; c < bn && j0 + c < nk; c += 32) {
    const int k = kpos[j0 + c];
    mn = min(mn, k);
    mx = max(mx, k);
  }
  mn = warp_min_int(mn);
  mx = warp_max_int(mx);
  if (lane == 0) out[t] = make_int2(mn, mx);
}

// Walks the key tiles [tb, te) of a CTA (tiles of bn keys) that some query of it can see: lane c of
// each warp holds the position range of tile base + c, 32 tiles at a time. next(t, &r) returns the
// first such tile at or after t (te when none) and its (min, max) key position; the result is the
// same in every warp and, broadcast from lane 0, known to ptxas as warp-uniform (the wgmma path
// needs that to keep its MMAs asynchronous).
struct VisibleTiles {
  const Params& p;
  int bn, te, cmax, lane, base;
  int2 rng;
  __device__ VisibleTiles(const Params& p_, int bn_, int tb, int te_, int cmax_)
      : p(p_), bn(bn_), te(te_), cmax(cmax_), lane(threadIdx.x & 31), base(tb) {
    rng = tb + lane < te ? key_tile_range(p, tb + lane, bn) : make_int2(INT_MAX, INT_MIN);
  }
  __device__ int next(int t, int2* r) {
    while (t < te) {
      if (t >= base + 32) {
        base += (t - base) / 32 * 32;
        rng = base + lane < te ? key_tile_range(p, base + lane, bn) : make_int2(INT_MAX, INT_MIN);
      }
      const unsigned hit = __ballot_sync(0xffffffffu, lane >= t - base && base + lane < te && rng.x <= cmax);
      if (hit) {
        const int c = __ffs(hit) - 1;
        *r = make_int2(__shfl_sync(0xffffffffu, rng.x, c), __shfl_sync(0xffffffffu, rng.y, c));
        return __shfl_sync(0xffffffffu, base + c, 0);
      }
      t = base + 32;
    }
    return te;
  }
};

// Launches the pre-pass that writes each bn-key tile's position range into the workspace, when the
// launcher has workspace for it.
cudaError_t launch_tile_ranges(const Params& p, int bn, cudaStream_t stream) {
  if (!p.tile_kpos) return cudaSuccess;
  const int ntiles = (p.nk + bn - 1) / bn;
  attn_key_tile_range_kernel<<<(ntiles + 7) / 8, 256, 0, stream>>>(p.kpos, p.nk, bn, ntiles, const_cast<int2*>(p.tile_kpos));
  return cudaGetLastError();
}

// One key tile for one warp: S = Q K^T, online softmax, O += P V. kFull: every key of the tile is
// visible to every row of the warp (no per-element mask); a separate instantiation so that the
// common, unmasked tiles carry no mask code at all.
template <bool kFull, class T, int D, int MT>
__device__ __forceinline__ void tc_tile(const T* Qs, const T* Ks, const T* Vs, const int* kp, const int* qps,
                                        int j0, int nk, float sl, int warp, int lane, float (&o)[MT][D / 8][4],
                                        float (&m)[MT][2], float (&l)[MT][2]) {
  using S = TcShape<D, MT>;
  constexpr int BN = S::BN, LD = S::LD, NT = BN / 8, DT = D / 8, RW = 16 * MT;
  constexpr bool full = kFull;
  const int g = lane >> 2, tq = lane & 3;
  float s[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int a = 0; a < NT; ++a)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mt][a][e] = 0.0f;
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
    unsigned qa[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
      ldsm_x4(qa[mt], Qs + (warp * RW + mt * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      unsigned b[4];
      ldsm_x4(b, Ks + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + ks * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816<T>(s[mt][2 * np], qa[mt], b[0], b[1]);
        mma16816<T>(s[mt][2 * np + 1], qa[mt], b[2], b[3]);
      }
    }
  }

  // Scale into the log2 domain, mask, online softmax. Element e of n-tile a: row g (e < 2) or
  // g + 8, key a * 8 + 2 tq + (e & 1). The mask is tested element by element (packing it into
  // bit masks first was miscompiled by ptxas 13.0: one row's bits were merged with the other's).
  bool rescale = false;
  float al[MT][2];
  unsigned pp[MT][NT][2];  // P of n-tile a rounded to T: (row g, row g + 8) x keys 2 tq, 2 tq + 1
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    int qr[2] = {0, 0};
    if (!full) {
      qr[0] = qps[warp * RW + mt * 16 + g];
      qr[1] = qps[warp * RW + mt * 16 + 8 + g];
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int a = 0; a < NT; ++a)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s[mt][a][e] * sl;
        if (!full) {
          const int col = a * 8 + 2 * tq + (e & 1);
          if (!(j0 + col < nk && kp[col] <= qr[e >> 1])) v = -INFINITY;
        }
        s[mt][a][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 1));
      mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 2));
      const float mn = fmaxf(m[mt][hf], mx[hf]);
      al[mt][hf] = mn == -INFINITY ? 1.0f : fast_exp2(m[mt][hf] - mn);
      rescale |= al[mt][hf] != 1.0f;
      m[mt][hf] = mn;
      mx[hf] = mn == -INFINITY ? 0.0f : mn;  // subtrahend: a row with no key yet keeps p = 0
    }
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int a = 0; a < NT; ++a)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const float p0 = fast_exp2(s[mt][a][2 * hf] - mx[hf]), p1 = fast_exp2(s[mt][a][2 * hf + 1] - mx[hf]);
        rs[hf] += p0 + p1;
        pp[mt][a][hf] = pack2<T>(p0, p1);
      }
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) l[mt][hf] = l[mt][hf] * al[mt][hf] + rs[hf];
  }
  // Once a row's maximum settles, most tiles leave it unchanged: skip the O rescale then.
  if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int a = 0; a < DT; ++a) {
        o[mt][a][0] *= al[mt][0];
        o[mt][a][1] *= al[mt][0];
        o[mt][a][2] *= al[mt][1];
        o[mt][a][3] *= al[mt][1];
      }
  }

  // O += P V, P straight from registers as the A operand.
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) {
    unsigned pa[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      pa[mt][0] = pp[mt][2 * kk][0];
      pa[mt][1] = pp[mt][2 * kk][1];
      pa[mt][2] = pp[mt][2 * kk + 1][0];
      pa[mt][3] = pp[mt][2 * kk + 1][1];
    }
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      unsigned b[4];
      ldsm_x4_t(b, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816<T>(o[mt][2 * dp], pa[mt], b[0], b[1]);
        mma16816<T>(o[mt][2 * dp + 1], pa[mt], b[2], b[3]);
      }
    }
  }
}

template <class T, int D, int MT>
__global__ void __launch_bounds__(kTcThreads, 2) attn_tc_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using S = TcShape<D, MT>;
  constexpr int BM = S::BM, BN = S::BN, LD = S::LD, DT = D / 8, RW = 16 * MT;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  T* Qs = reinterpret_cast<T*>(tc_smem);                          // [BM][LD]
  T* KVs = Qs + BM * LD;                                          // [2 stages][K, V][BN][LD]
  int* kps = reinterpret_cast<int*>(KVs + 2 * S::kStage);        // [2 stages][BN]
  __shared__ int qmax_w[kTcWarps];
  __shared__ int qps[BM];  // query positions of the block (INT_MIN past nq), for the masked tiles

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  // Heads vary fastest and query blocks run last to first: with positions ascending, the blocks with
  // the most visible keys start in the first wave, and the heads of one kv group run side by side.
  const int nqb = (p.nq + BM - 1) / BM;
  const int h = static_cast<int>(blockIdx.x % p.hq), qb = nqb - 1 - static_cast<int>(blockIdx.x / p.hq);
  const int i0 = qb * BM, split = blockIdx.y, kvh = h / p.group;
  const T* q = static_cast<const T*>(p.q);
  const T* kb = static_cast<const T*>(p.k) + static_cast<size_t>(kvh) * D;
  const T* vb = static_cast<const T*>(p.v) + static_cast<size_t>(kvh) * D;
  const size_t qstride = static_cast<size_t>(p.hq) * D, kvstride = static_cast<size_t>(p.hkv) * D;

  // A thread's rows: m tile mt, half hf -> row warp * RW + mt * 16 + hf * 8 + g of the block.
  int wmin = INT_MAX, wmax = INT_MIN;  // over the warp's rows that exist
  if (lane < RW) {
    const int r = i0 + warp * RW + lane;
    const int qp = r < p.nq ? p.qpos[r] : INT_MIN;
    qps[warp * RW + lane] = qp;
    if (r < p.nq) wmin = wmax = qp;
  }
  wmin = warp_min_int(wmin);
  wmax = warp_max_int(wmax);
  if (lane == 0) qmax_w[warp] = wmax;

  tc_load_rows<T, D, BM>(Qs, q + static_cast<size_t>(i0) * qstride + static_cast<size_t>(h) * D, qstride,
                         p.nq - i0);
  __syncthreads();
  int cmax = qmax_w[0];
#pragma unroll
  for (int w = 1; w < kTcWarps; ++w) cmax = max(cmax, qmax_w[w]);

  const int ntiles = (p.nk + BN - 1) / BN;
  const int tb = split * p.tiles_per_split, te = min(tb + p.tiles_per_split, ntiles);
  VisibleTiles tiles(p, BN, tb, te, cmax);
  auto load_tile = [&](int t, int stage) {
    const int j0 = t * BN;
    T* ks = KVs + stage * S::kStage;
    tc_load_rows<T, D, BN>(ks, kb + static_cast<size_t>(j0) * kvstride, kvstride, p.nk - j0);
    tc_load_rows<T, D, BN>(ks + BN * LD, vb + static_cast<size_t>(j0) * kvstride, kvstride, p.nk - j0);
    for (int c = tid; c < BN; c += kTcThreads)
      cp_async4(kps + stage * BN + c, p.kpos + (j0 + c < p.nk ? j0 + c : 0), j0 + c < p.nk);
  };

  float o[MT][DT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int a = 0; a < DT; ++a)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][a][e] = 0.0f;
  float m[MT][2], l[MT][2];  // running max (log2 domain) and this thread's part of the row sum
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      m[mt][hf] = -INFINITY;
      l[mt][hf] = 0.0f;
    }
  const float sl = p.scale_log2;

  int2 cr = make_int2(INT_MAX, INT_MIN), nr = cr;
  int cur = tiles.next(tb, &cr);
  if (cur < te) load_tile(cur, 0);
  cp_async_commit();
  int stage = 0;
  while (cur < te) {
    const int nxt = tiles.next(cur + 1, &nr);
    cp_async_wait<0>();  // this thread's copies of `cur` (and Q) have landed
    __syncthreads();     // everyone's have; everyone is done with the other stage
    if (nxt < te) load_tile(nxt, stage ^ 1);
    cp_async_commit();

    if (cr.x <= wmax) {  // some key of the tile is visible to some row of this warp
      const T* Ks = KVs + stage * S::kStage;
      const T* Vs = Ks + BN * LD;
      const int* kp = kps + stage * BN;
      const int j0 = cur * BN;
      // Every key visible to every row of the warp: no per-element mask.
      if (cr.y <= wmin && j0 + BN <= p.nk)
        tc_tile<true, T, D, MT>(Qs, Ks, Vs, kp, qps, j0, p.nk, sl, warp, lane, o, m, l);
      else
        tc_tile<false, T, D, MT>(Qs, Ks, Vs, kp, qps, j0, p.nk, sl, warp, lane, o, m, l);
    }
    cur = nxt;
    cr = nr;
    stage ^= 1;
  }
  cp_async_wait<0>();
  __syncthreads();  // every copy into Q has landed (a CTA with no visible tile never waited for them)

#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      l[mt][hf] += __shfl_xor_sync(0xffffffffu, l[mt][hf], 1);
      l[mt][hf] += __shfl_xor_sync(0xffffffffu, l[mt][hf], 2);
    }
  if (p.nsplit == 1) {
    // Normalised rows as T into this warp's own Q rows (no other warp reads them), then 16-byte
    // stores of whole rows.
    T* stg = Qs + warp * RW * LD;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const float inv = l[mt][hf] > 0.0f ? 1.0f / l[mt][hf] : 0.0f;
        unsigned* dst = reinterpret_cast<unsigned*>(stg + (mt * 16 + hf * 8 + g) * LD);
#pragma unroll
        for (int a = 0; a < DT; ++a)
          dst[(a * 8 + 2 * tq) / 2] = pack2<T>(o[mt][a][2 * hf] * inv, o[mt][a][2 * hf + 1] * inv);
      }
    __syncwarp();
    constexpr int kChunks = D / 8;
    const bool vec = (reinterpret_cast<uintptr_t>(p.out) & 15) == 0;
    for (int c = lane; c < RW * kChunks; c += 32) {
      const int r = c / kChunks, x = (c - r * kChunks) * 8, i = i0 + warp * RW + r;
      if (i >= p.nq) continue;
      const uint4 val = *reinterpret_cast<const uint4*>(stg + r * LD + x);
      T* dst = static_cast<T*>(p.out) + (static_cast<size_t>(i) * p.hq + h) * D + x;
      if (vec) {
        *reinterpret_cast<uint4*>(dst) = val;
      } else {
        unsigned* d4 = reinterpret_cast<unsigned*>(dst);
        d4[0] = val.x;
        d4[1] = val.y;
        d4[2] = val.z;
        d4[3] = val.w;
      }
    }
  } else {
    const size_t rows = static_cast<size_t>(p.nq) * p.hq;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int i = i0 + warp * RW + mt * 16 + hf * 8 + g;
        if (i >= p.nq) continue;
        const size_t row = static_cast<size_t>(i) * p.hq + h;
        float2* dst = reinterpret_cast<float2*>(p.ws_acc + (static_cast<size_t>(split) * rows + row) * D);
#pragma unroll
        for (int a = 0; a < DT; ++a) dst[(a * 8 + 2 * tq) / 2] = make_float2(o[mt][a][2 * hf], o[mt][a][2 * hf + 1]);
        if (tq == 0) emit_ml(p, split, row, m[mt][hf], l[mt][hf]);
      }
  }
#endif
}

#include "attention_wgmma.cuh"

// ---------------------------------------------------------------------------------------------
// combine: out = sum_s w_s acc_s / sum_s w_s l_s with w_s = exp2(m_s - max_s m_s), splits in order.

constexpr int kCombineThreads = 128;

// One block a row. With up to kCombineThreads splits, the splits' m and l are read at once into
// shared memory and each output element's partials are independent loads (reading them one after
// another cost 9 us a layer for a 7B decode step); more splits read them in turn. Same arithmetic,
// same order of additions either way.
template <class T>
__global__ void __launch_bounds__(kCombineThreads) attn_combine_kernel(Params p) {
  __shared__ float sm[kCombineThreads], sl[kCombineThreads];
  __shared__ float s_mx, s_l;
  allow_dependents();
  wait_for_previous();  // the splits' partials (PDL launch)
  const size_t rows = static_cast<size_t>(p.nq) * p.hq;
  const bool staged = p.nsplit <= kCombineThreads;
  for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
    if (staged && threadIdx.x < p.nsplit) {
      sm[threadIdx.x] = p.ws_m[threadIdx.x * rows + row];
      sl[threadIdx.x] = p.ws_l[threadIdx.x * rows + row];
    }
    __syncthreads();
    auto m_of = [&](int s) { return staged ? sm[s] : p.ws_m[s * rows + row]; };
    if (threadIdx.x == 0) {
      float mx = -INFINITY;
      for (int s = 0; s < p.nsplit; ++s) mx = fmaxf(mx, m_of(s));
      float l = 0.0f;
      for (int s = 0; s < p.nsplit; ++s) {
        const float ms = m_of(s);
        if (ms != -INFINITY) l += exp2f(ms - mx) * (staged ? sl[s] : p.ws_l[s * rows + row]);
      }
      s_mx = mx;
      s_l = l;
    }
    __syncthreads();
    const float mx = s_mx, l = s_l;
    for (int x = threadIdx.x; x < p.d; x += blockDim.x) {
      float acc = 0.0f;
#pragma unroll 8
      for (int s = 0; s < p.nsplit; ++s) {
        const float ms = m_of(s);
        const float part = p.ws_acc[(s * rows + row) * p.d + x];  // read even for an empty split: discarded
        if (ms != -INFINITY) acc += exp2f(ms - mx) * part;
      }
      static_cast<T*>(p.out)[row * p.d + x] = from_f32<T>(l > 0.0f ? acc / l : 0.0f);
    }
    __syncthreads();  // sm, sl, s_mx and s_l are rewritten for the next row
  }
}

// ---------------------------------------------------------------------------------------------
// planning and launch

enum class Path { Decode, DecodeGroup, Tiled, TensorCore, Wgmma };

struct Plan {
  Path path;
  int nsplit, tiles_per_split;
  int mt;             // tensor core: m16 tiles per warp (TcShape)
  unsigned blocks;    // CTAs before splitting
  size_t tile_bytes;  // tensor core: workspace bytes for the key-tile position ranges (first)
  size_t workspace;   // bytes of split partials (after the tile ranges), 0 when nsplit == 1
  size_t smem;
};

constexpr size_t kMaxWorkspace = size_t(256) << 20;

bool tc_head_dim(size_t d) { return d == 32 || d == 64 || d == 80 || d == 96 || d == 128 || d == 256; }

size_t tc_smem_bytes(size_t d, int mt) {
  const bool two = mt == 2;
  switch (d) {
    case 32: return two ? TcShape<32, 2>::smem(2) : TcShape<32, 1>::smem(2);
    case 64: return two ? TcShape<64, 2>::smem(2) : TcShape<64, 1>::smem(2);
    case 80: return two ? TcShape<80, 2>::smem(2) : TcShape<80, 1>::smem(2);
    case 96: return two ? TcShape<96, 2>::smem(2) : TcShape<96, 1>::smem(2);
    case 128: return two ? TcShape<128, 2>::smem(2) : TcShape<128, 1>::smem(2);
    default: return TcShape<256, 1>::smem(2);
  }
}

// The Hopper path's kernel is written for any head dim that is a multiple of 64 but built for 128 only:
// at 64 the mma.sync path was faster (4096-token causal prefill, 16 heads: 0.153 vs 0.169 ms, H200).
constexpr size_t kWgHeadDim = 128;

// Whether the device loaded the sm_90a code of a wgmma kernel: sm_90 code of it (a build that also
// lists plain 90, or hand flags) reports the same binary version but has an empty body, which has no
// static shared memory (the real one has its query positions and mbarriers there).
bool wg_body_loaded(const void* kernel) {
  cudaFuncAttributes attr{};
  return kernel_attributes(kernel, &attr) && attr.binaryVersion == 90 && attr.sharedSizeBytes > 0;
}

// Whether the Hopper path's kernel runs on the current device: the build has it (KVLAB_WGMMA: CMake
// lists sm_90a), the device is compute capability 9 and it loaded the sm_90a code (wg_body_loaded).
// KVLAB_NO_WGMMA=1 in the environment turns the path off, to compare it with the mma.sync path in
// one process.
bool wg_runs_here(int dtype, size_t d, int cc_major) {
#ifdef KVLAB_WGMMA
  static const bool off = [] {
    const char* e = std::getenv("KVLAB_NO_WGMMA");
    return e && *e && std::strcmp(e, "0") != 0;
  }();
  if (off || cc_major != 9 || d != kWgHeadDim || (dtype != kF16 && dtype != kBF16)) return false;
  const void* k = dtype == kF16 ? reinterpret_cast<const void*>(attn_wg_kernel<__half, kWgHeadDim>)
                                : reinterpret_cast<const void*>(attn_wg_kernel<__nv_bfloat16, kWgHeadDim>);
  return wg_body_loaded(k);
#else
  (void)dtype, (void)d, (void)cc_major;
  return false;
#endif
}

cudaError_t make_plan(const AttentionArgs& a, Plan* plan) {
  int sms = 0, optin = 0, cc = 0;
  cudaError_t err = current_device_limits(&sms, &optin, &cc);
  if (err != cudaSuccess) return err;
  const bool half = a.dtype == kF16 || a.dtype == kBF16;
  const int mt = tc_mtiles(a.d, a.nq);
  const bool tc = half && cc >= 8 && tc_head_dim(a.d) && aligned_to(a.q, 16) && aligned_to(a.k, 16) &&
                  aligned_to(a.v, 16) && aligned_to(a.out, 4) && tc_smem_bytes(a.d, mt) <= static_cast<size_t>(optin);
  // Hopper: 128-query blocks, so only where there are more than 64 queries (fewer mostly compute
  // padding); its softmax takes the row max before scaling, so a positive scale.
  const bool wg = tc && a.nq > 64 && a.scale > 0.0f && WgShape<kWgHeadDim>::smem <= static_cast<size_t>(optin) && wg_runs_here(a.dtype, a.d, cc);
  const bool tiled_fits = tiled_smem_bytes(static_cast<int>(a.d)) <= static_cast<size_t>(optin);
  Plan pl{};
  int tile_keys, min_tiles, per_sm = 2;
  if (a.nq <= (tc ? 4u : 16u) || (!tc && !tiled_fits)) {
    const bool grouped = half && decode_group_fits(a.d, a.hq / a.hkv) && aligned_to(a.q, 16) &&
                         aligned_to(a.k, 16) && aligned_to(a.v, 16);
    pl.path = grouped ? Path::DecodeGroup : Path::Decode;
    pl.blocks = static_cast<unsigned>(a.nq * (grouped ? a.hkv : a.hq));
    pl.smem = grouped ? 0 : decode_smem_bytes();
    tile_keys = grouped ? kDgTileKeys : kDecThreads;
    // Splits of at least one 128-key tile per head (ncu: 4 a head at 1024 keys left the per-head
    // kernel at 33 us a layer); grouped, at least 64 keys (32 layers of a 7B decode step at 1024
    // keys: 6.88 ms with 16 splits a kv head, 6.96 with 32, 7.11 with 8; H100, one call).
    min_tiles = grouped ? 2 : 1;
    per_sm = 4;
  } else if (wg) {
    pl.path = Path::Wgmma;
    using W = WgShape<kWgHeadDim>;
    pl.blocks = static_cast<unsigned>((a.nq + W::BM - 1) / W::BM * a.hq);
    pl.smem = W::smem;
    tile_keys = W::BN;
    min_tiles = 2;
  } else if (tc) {
    pl.path = Path::TensorCore;
    pl.mt = mt;
    const size_t bm = static_cast<size_t>(kTcWarps) * 16 * mt;
    pl.blocks = static_cast<unsigned>((a.nq + bm - 1) / bm * a.hq);
    pl.smem = tc_smem_bytes(a.d, mt);
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
  if (pl.path == Path::TensorCore || pl.path == Path::Wgmma) pl.tile_bytes = (static_cast<size_t>(ntiles) * sizeof(int2) + 255) / 256 * 256;
  *plan = pl;
  return cudaSuccess;
}

bool valid_args(const AttentionArgs& a) {
  return (a.dtype == kF32 || a.dtype == kF16 || a.dtype == kBF16) && a.q && a.k && a.v && a.qpos && a.kpos &&
         a.out && a.hq > 0 && a.hkv > 0 && a.hq % a.hkv == 0 && a.d > 0 && a.d <= kMaxHeadDim && a.hq <= 65535 &&
         a.nq <= INT_MAX && a.nk <= kMaxKeys && a.nq * a.hq <= INT_MAX;
}

template <class T, int D, int MT>
cudaError_t launch_tc(const Params& p, const Plan& pl, cudaStream_t stream) {
  using S = TcShape<D, MT>;
  cudaError_t e = launch_tile_ranges(p, S::BN, stream);
  if (e != cudaSuccess) return e;
  auto kernel = attn_tc_kernel<T, D, MT>;
  e = ensure_smem_limit(kernel, pl.smem);
  if (e != cudaSuccess) return e;
  const unsigned nqb = static_cast<unsigned>((p.nq + S::BM - 1) / S::BM);
  dim3 grid(nqb * static_cast<unsigned>(p.hq), static_cast<unsigned>(p.nsplit));
  kernel<<<grid, kTcThreads, pl.smem, stream>>>(p);
  return cudaGetLastError();
}

template <class T, int D>
cudaError_t launch_wg(const Params& p, const Plan& pl, cudaStream_t stream) {
  using S = WgShape<D>;
  cudaError_t e = launch_tile_ranges(p, S::BN, stream);
  if (e != cudaSuccess) return e;
  auto kernel = attn_wg_kernel<T, D>;
  e = ensure_smem_limit(kernel, pl.smem);
  if (e != cudaSuccess) return e;
  dim3 grid(static_cast<unsigned>((p.nq + S::BM - 1) / S::BM) * static_cast<unsigned>(p.hq), static_cast<unsigned>(p.nsplit));
  kernel<<<grid, kWgThreads, pl.smem, stream>>>(p);
  return cudaGetLastError();
}

template <class T, int D>
cudaError_t launch_tc_d(const Params& p, const Plan& pl, cudaStream_t stream) {
  if constexpr (D == 256) return launch_tc<T, D, 1>(p, pl, stream);
  else return pl.mt == 2 ? launch_tc<T, D, 2>(p, pl, stream) : launch_tc<T, D, 1>(p, pl, stream);
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

template <class T, int D>
cudaError_t launch_decode_group_d(const Params& p, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(static_cast<size_t>(p.nq) * p.hkv), static_cast<unsigned>(p.nsplit));
  switch (p.group) {
    case 1: return launch_pdl(attn_decode_group_kernel<T, D, 1>, grid, dim3(kDgThreads), 0, stream, p);
    case 2: return launch_pdl(attn_decode_group_kernel<T, D, 2>, grid, dim3(kDgThreads), 0, stream, p);
    case 4: return launch_pdl(attn_decode_group_kernel<T, D, 4>, grid, dim3(kDgThreads), 0, stream, p);
    case 8: return launch_pdl(attn_decode_group_kernel<T, D, 8>, grid, dim3(kDgThreads), 0, stream, p);
    default: return cudaErrorInvalidValue;
  }
}

template <class T>
cudaError_t launch_path(const Params& p, const Plan& pl, cudaStream_t stream) {
  cudaError_t e = cudaSuccess;
  if (pl.path == Path::DecodeGroup) {
    if constexpr (sizeof(T) == 2) e = p.d == 64 ? launch_decode_group_d<T, 64>(p, stream) : launch_decode_group_d<T, 128>(p, stream);
    else e = cudaErrorInvalidValue;
  } else if (pl.path == Path::Decode) {
    const bool vec = p.d % kVec16<T> == 0 && aligned_to(p.k, 16) && aligned_to(p.v, 16);
    e = launch_decode<T>(p, pl, vec, stream);
  } else if (pl.path == Path::Tiled) {
    e = launch_tiled<T>(p, pl, stream);
  } else if (pl.path == Path::Wgmma) {
    if constexpr (sizeof(T) == 2) e = launch_wg<T, kWgHeadDim>(p, pl, stream);
    else e = cudaErrorInvalidValue;
  } else {
    if constexpr (sizeof(T) == 2) {
      switch (p.d) {
        case 32: e = launch_tc_d<T, 32>(p, pl, stream); break;
        case 64: e = launch_tc_d<T, 64>(p, pl, stream); break;
        case 80: e = launch_tc_d<T, 80>(p, pl, stream); break;
        case 96: e = launch_tc_d<T, 96>(p, pl, stream); break;
        case 128: e = launch_tc_d<T, 128>(p, pl, stream); break;
        default: e = launch_tc_d<T, 256>(p, pl, stream); break;
      }
    } else {
      e = cudaErrorInvalidValue;
    }
  }
  if (e != cudaSuccess || p.nsplit == 1) return e;
  const size_t rows = static_cast<size_t>(p.nq) * p.hq;
  const unsigned grid = static_cast<unsigned>(rows < 65535u * 16u ? rows : 65535u * 16u);
  return launch_pdl(attn_combine_kernel<T>, dim3(grid), dim3(kCombineThreads), 0, stream, p);
}

}  // namespace

size_t attention_workspace_bytes(const AttentionArgs& a) {
  if (!valid_args(a) || a.nq == 0 || a.nk == 0) return 0;
  Plan pl{};
  if (make_plan(a, &pl) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return pl.tile_bytes + pl.workspace;
}

cudaError_t attention(const AttentionArgs& a, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (!valid_args(a)) return cudaErrorInvalidValue;
  if (a.nq == 0) return cudaSuccess;
  const size_t elem = a.dtype == kF32 ? 4 : 2;
  if (a.nk == 0) return cudaMemsetAsync(a.out, 0, a.nq * a.hq * a.d * elem, stream);
  Plan pl{};
  cudaError_t e = make_plan(a, &pl);
  if (e != cudaSuccess) return e;
  const bool have_ws = workspace && aligned_to(workspace, 16);
  if (pl.nsplit > 1 && (!have_ws || workspace_bytes < pl.tile_bytes + pl.workspace)) {
    // No room for partials: one split covering every key tile.
    const int ntiles = pl.tiles_per_split * pl.nsplit;
    pl.tiles_per_split = ntiles;
    pl.nsplit = 1;
    pl.workspace = 0;
  }
  // No room for the key-tile ranges: the kernel reads positions to find them instead.
  if (!have_ws || workspace_bytes < pl.tile_bytes) pl.tile_bytes = 0;
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
  if (pl.tile_bytes > 0) p.tile_kpos = static_cast<const int2*>(workspace);
  if (pl.nsplit > 1) {
    const size_t rows = a.nq * a.hq;
    p.ws_acc = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + pl.tile_bytes);
    p.ws_m = p.ws_acc + static_cast<size_t>(pl.nsplit) * rows * a.d;
    p.ws_l = p.ws_m + static_cast<size_t>(pl.nsplit) * rows;
  }
  return dispatch_float(a.dtype, [&](auto tag) { return launch_path<decltype(tag)>(p, pl, stream); });
}

}  // namespace kvk
