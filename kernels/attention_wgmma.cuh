// Hopper (sm_90a) path of attention.cu, included there inside its anonymous namespace: it uses that
// file's Params, cp.async helpers, key-tile ranges and split partials.
//
// Why: on an H100 the mma.sync path runs an 8192-token causal prefill's attention at about 295
// TFLOP/s while cuBLAS's GEMMs run at 750+; warpgroup MMA (wgmma) reads its operands straight from
// shared memory and runs asynchronously, which mma.sync cannot. Measured (H200, 32 heads / 8 kv heads
// x 128, 8192 tokens, one layer): 1.196 ms (460 TFLOP/s) vs 1.896 ms for the mma.sync path. At 2 warps
// a scheduler this kernel is limited by the instructions between its MMAs (ncu), hence the copies
// without per-copy index arithmetic and the scale folded into the exponent (1.520 ms without both).
//
// Shape: one CTA of two warpgroups per (128 queries, head, split); warpgroup w owns query rows
// [64 w, 64 w + 64). Key tiles of 128 are copied into shared memory by cp.async one tile ahead
// (every thread issues its share; K in two stages, V in three, since a tile's P V still runs when
// the tile after next is copied), with mbarriers saying when a tile has landed and when a stage is
// free. Per tile and warpgroup: S = Q K^T by wgmma m64n128k16 with Q and K read from shared memory;
// online softmax in registers (the accumulator layout is mma.sync's m16n8 one, so the softmax is
// the tensor-core path's); O += P V by wgmma with P from registers and V read from shared memory
// transposed, issued with the next tile's S so that it runs under that tile's softmax. Q, K and V
// tiles are stored in the 128-byte swizzle (16-byte chunk c of row r at chunk c ^ (r & 7), in columns
// of 64 elements), the layout wgmma's descriptors name, so neither the copies nor the MMA reads
// conflict on banks.
#pragma once

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KVK_WGMMA_DEVICE 1
#endif

constexpr int kWgThreads = 256;

template <int D> struct WgShape {
  static constexpr int BM = 128, BN = 128;                      // queries per CTA, keys per tile
  static constexpr int kQBytes = BM * D * 2, kTileBytes = BN * D * 2;
  // Q, two K stages, three V stages (a tile's P V runs on while the next tile's copies are issued),
  // the key positions of the two K stages; 1024 bytes of slack to align the swizzled tiles.
  static constexpr size_t smem = 1024 + kQBytes + 5 * kTileBytes + 2 * BN * sizeof(int);
};

// Byte offset of 16-byte chunk `c` (of D / 8) of row r in a swizzled tile of `rows` rows.
__device__ __forceinline__ unsigned wg_swz(int r, int c, int rows) {
  return static_cast<unsigned>((c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

// Rows [0, R) of a tile into swizzled shared memory at `dst` (a shared-space address), rows >= valid
// zero-filled; 16 bytes a copy, all threads of the CTA. A thread copies chunk c of rows r0, r0 + P,
// r0 + 2P, ... (P = threads / chunks a row, a multiple of 8), so its swizzled offset is one constant
// plus P rows a step: no index arithmetic per copy.
template <class T, int D, int R>
__device__ __forceinline__ void wg_load_rows(unsigned dst, const T* src, size_t stride, int valid) {
  constexpr int kChunks = D / 8, P = kWgThreads / kChunks;
  static_assert(kWgThreads % kChunks == 0 && P % 8 == 0 && R % P == 0, "copy pattern");
  const int c = threadIdx.x % kChunks, r0 = threadIdx.x / kChunks;
  const unsigned d0 = dst + wg_swz(r0, c, R);
  const T* s0 = src + static_cast<size_t>(r0) * stride + c * 8;
#pragma unroll
  for (int j = 0; j < R / P; ++j) {
    const bool ok = r0 + j * P < valid;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d0 + j * P * 128),
                 "l"(ok ? s0 + static_cast<size_t>(j) * P * stride : src), "r"(ok ? 16 : 0)
                 : "memory");
  }
}

// wgmma matrix descriptor: start address, leading and stride byte offsets (all >> 4), 128-byte swizzle.
__device__ __forceinline__ uint64_t wg_desc(unsigned addr, unsigned lbo, unsigned sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | static_cast<uint64_t>((lbo >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((sbo >> 4) & 0x3FFF) << 32 | static_cast<uint64_t>(1) << 62;
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Keeps the compiler from moving accumulator reads or writes across an asynchronous MMA.
template <int N> __device__ __forceinline__ void wg_pin(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// d (64 x N, f32) = (acc ? d : 0) + A (64 x 16, shared, K-major) * B (N x 16, shared, K-major).
template <class T, int N> __device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t a, uint64_t b, int acc);
// d (64 x N, f32) += A (64 x 16, registers: mma.sync's A fragment per warp) * B (16 x N, shared, N-major).
template <class T, int N> __device__ __forceinline__ void wgmma_rs_t(float (&d)[N / 2], const unsigned (&a)[4], uint64_t b);

#ifdef KVK_WGMMA_DEVICE
#include "attention_wgmma_ops.inc"
#else
template <class T, int N> __device__ __forceinline__ void wgmma_ss(float (&)[N / 2], uint64_t, uint64_t, int) {}
template <class T, int N> __device__ __forceinline__ void wgmma_rs_t(float (&)[N / 2], const unsigned (&)[4], uint64_t) {}
#endif

template <int N> __device__ __forceinline__ void wg_pin_u(unsigned (&r)[N][2]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i][0]), "+r"(r[i][1])::"memory");
}
template <int N> __device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// mbarrier helpers (shared-space addresses). A phase completes after `count` arrivals; waiting for
// parity p returns once the phase with that parity has completed (at once for the phase before the
// first, parity 1).
__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
// Arrives once every cp.async this thread issued before has landed.
__device__ __forceinline__ void mbar_arrive_copies(unsigned bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// Issues S = Q K^T for one warpgroup (64 query rows at qs, a BN-key tile at ks), not committed.
template <class T, int D>
__device__ __forceinline__ void wg_issue_s(float (&s)[WgShape<D>::BN / 2], unsigned qs, unsigned ks) {
  constexpr int BM = WgShape<D>::BM, BN = WgShape<D>::BN;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const unsigned col = (kk >> 2) * 128u, in = (kk & 3) * 32u;  // 64-element column, 32 bytes a k step
    wgmma_ss<T, BN>(s, wg_desc(qs + col * BM + in, 16, 1024), wg_desc(ks + col * BN + in, 16, 1024), kk);
  }
}

// Issues O += P V (P in registers, V's tile at vs), not committed: k step kk takes keys [16 kk, 16 kk
// + 16) = two 8-row groups (1024 bytes apart) of every 64-element column of V (BN * 128 bytes apart).
template <class T, int D>
__device__ __forceinline__ void wg_issue_pv(float (&o)[D / 2], const unsigned (&pp)[WgShape<D>::BN / 8][2], unsigned vs) {
  constexpr int BN = WgShape<D>::BN;
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) {
    const unsigned pa[4] = {pp[2 * kk][0], pp[2 * kk][1], pp[2 * kk + 1][0], pp[2 * kk + 1][1]};
    wgmma_rs_t<T, D>(o, pa, wg_desc(vs + kk * 2048u, BN * 128u, 1024));
  }
}

// Online softmax of one tile's scores for this thread's rows qr0 (= its warp's 16-row slice + g) and
// qr1 = qr0 + 8: updates the running max m, returns the factor al that rescales what was summed
// before, this tile's row sums rs, and P rounded to T as the A operand of P V. Element e of n-tile a:
// row qr0 (e < 2) or qr1, key a * 8 + 2 tq + (e & 1).
template <bool kFull, class T, int BN>
__device__ __forceinline__ void wg_softmax(float (&s)[BN / 2], const int* kp, int qr0, int qr1, int j0, int nk,
                                           float sl, float (&m)[2], float (&al)[2], float (&rs)[2],
                                           unsigned (&pn)[BN / 8][2]) {
  constexpr int NT = BN / 8;
  const int tq = threadIdx.x & 3;
  // The max is taken over raw scores (the scale is positive) and the scale folded into the
  // exponent's FMA: p = 2^(s sl - m), one instruction less per score than scaling first.
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int a = 0; a < NT; ++a)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (!kFull) {
        const int col = a * 8 + 2 * tq + (e & 1);
        if (!(j0 + col < nk && kp[col] <= (e < 2 ? qr0 : qr1))) s[4 * a + e] = -INFINITY;
      }
      mx[e >> 1] = fmaxf(mx[e >> 1], s[4 * a + e]);
    }
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 1));
    mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 2));
    const float mn = fmaxf(m[hf], mx[hf] * sl);  // -inf * sl stays -inf
    al[hf] = mn == -INFINITY ? 1.0f : fast_exp2(m[hf] - mn);
    m[hf] = mn;
    mx[hf] = mn == -INFINITY ? 0.0f : mn;  // subtrahend: a row with no key yet keeps p = 0
    rs[hf] = 0.0f;
  }
#pragma unroll
  for (int a = 0; a < NT; ++a)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const float p0 = fast_exp2(fmaf(s[4 * a + 2 * hf], sl, -mx[hf]));
      const float p1 = fast_exp2(fmaf(s[4 * a + 2 * hf + 1], sl, -mx[hf]));
      rs[hf] += p0 + p1;
      pn[a][hf] = pack2<T>(p0, p1);
    }
}

template <class T, int D>
__global__ void __launch_bounds__(kWgThreads, 1) attn_wg_kernel(Params p) {
#ifdef KVK_WGMMA_DEVICE
  using S = WgShape<D>;
  constexpr int BM = S::BM, BN = S::BN;
  extern __shared__ unsigned char wg_smem_raw[];
  __shared__ int qps[BM];  // query positions of the block (INT_MIN past nq)
  __shared__ int wmin_s[4], wmax_s[4];
  // Per tile: full (its K, V and positions landed: 256 copy arrivals), K stage free, V stage free
  // (256 arrivals: every thread once its warpgroup is done with the stage or skips the tile).
  __shared__ __align__(8) unsigned long long bar_full[3], bar_kfree[2], bar_vfree[3];
  if (threadIdx.x == 0) {
    for (int i = 0; i < 3; ++i) mbar_init(smem_addr(&bar_full[i]), kWgThreads);
    for (int i = 0; i < 2; ++i) mbar_init(smem_addr(&bar_kfree[i]), kWgThreads);
    for (int i = 0; i < 3; ++i) mbar_init(smem_addr(&bar_vfree[i]), kWgThreads);
  }
  // Swizzled tiles need 1024-byte alignment of the shared-space address.
  const unsigned raw = smem_addr(wg_smem_raw), base = (raw + 1023u) & ~1023u;
  // The n-th loaded tile: K in stage n % 2, V in stage n % 3, key positions in n % 2.
  const unsigned qs = base, k0 = base + S::kQBytes, v0 = k0 + 2 * S::kTileBytes;
  int* kps = reinterpret_cast<int*>(wg_smem_raw + (base - raw) + S::kQBytes + 5 * S::kTileBytes);  // [2][BN]

  const int tid = threadIdx.x, lane = tid & 31, wg = tid >> 7, g = lane >> 2, tq = lane & 3;
  const int nqb = (p.nq + BM - 1) / BM;
  const int h = static_cast<int>(blockIdx.x % p.hq), qb = nqb - 1 - static_cast<int>(blockIdx.x / p.hq);
  const int i0 = qb * BM, split = blockIdx.y, kvh = h / p.group;
  const T* kb = static_cast<const T*>(p.k) + static_cast<size_t>(kvh) * D;
  const T* vb = static_cast<const T*>(p.v) + static_cast<size_t>(kvh) * D;
  const size_t qstride = static_cast<size_t>(p.hq) * D, kvstride = static_cast<size_t>(p.hkv) * D;

  if (tid < BM) {  // warps 0-3: warp k holds rows [32 k, 32 k + 32), so warpgroup w's are warps 2w, 2w + 1
    const int r = i0 + tid;
    const int qp = r < p.nq ? p.qpos[r] : INT_MIN;
    qps[tid] = qp;
    const int mn = warp_min_int(r < p.nq ? qp : INT_MAX), mx = warp_max_int(r < p.nq ? qp : INT_MIN);
    if (lane == 0) {
      wmin_s[tid >> 5] = mn;
      wmax_s[tid >> 5] = mx;
    }
  }
  wg_load_rows<T, D, BM>(qs, static_cast<const T*>(p.q) + static_cast<size_t>(i0) * qstride + static_cast<size_t>(h) * D,
                         qstride, p.nq - i0);
  __syncthreads();
  const int gmin = min(wmin_s[2 * wg], wmin_s[2 * wg + 1]), gmax = max(wmax_s[2 * wg], wmax_s[2 * wg + 1]);
  const int cmax = max(max(wmax_s[0], wmax_s[1]), max(wmax_s[2], wmax_s[3]));
  const int row0 = wg * 64 + ((tid >> 5) & 3) * 16 + g;  // this thread's rows: row0, row0 + 8
  const int qr0 = qps[row0], qr1 = qps[row0 + 8];

  const int ntiles = (p.nk + BN - 1) / BN;
  const int tb = split * p.tiles_per_split, te = min(tb + p.tiles_per_split, ntiles);
  VisibleTiles tiles(p, BN, tb, te, cmax);
  auto load_tile = [&](int t, int n) {
    const int j0 = t * BN, stage = n & 1;
    wg_load_rows<T, D, BN>(k0 + stage * S::kTileBytes, kb + static_cast<size_t>(j0) * kvstride, kvstride, p.nk - j0);
    wg_load_rows<T, D, BN>(v0 + (n % 3) * S::kTileBytes, vb + static_cast<size_t>(j0) * kvstride, kvstride, p.nk - j0);
    for (int c = tid; c < BN; c += kWgThreads)
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(kps + stage * BN + c)),
                   "l"(p.kpos + (j0 + c < p.nk ? j0 + c : 0)), "r"(j0 + c < p.nk ? 4 : 0)
                   : "memory");
  };

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  // P of the last tile this warpgroup computed, whose P V is not issued yet (pending), and its V
  // stage; zero when nothing is pending.
  unsigned pp[BN / 8][2] = {};
  bool pending = false;
  unsigned pend_v = 0;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float sl = p.scale_log2;
  const unsigned qw = qs + wg * 64 * 128;  // this warpgroup's Q rows
  auto flush = [&]() {  // issues and retires the pending P V
    if (!pending) return;
    wg_fence();
    wg_issue_pv<T, D>(o, pp, pend_v);
    wg_commit();
    wg_wait<0>();
    wg_pin(o);
    wg_pin_u(pp);
#pragma unroll
    for (int a = 0; a < BN / 8; ++a) pp[a][0] = pp[a][1] = 0u;
    pending = false;
  };

  int2 cr = make_int2(INT_MAX, INT_MIN), nr = cr;
  int cur = tiles.next(tb, &cr);
  if (cur < te) {
    load_tile(cur, 0);
    mbar_arrive_copies(smem_addr(&bar_full[0]));  // with Q's copies
  }
  int pend_n = 0;  // the tile index (n) of the pending P V
  auto vfree = [&](int t) { mbar_arrive(smem_addr(&bar_vfree[t % 3])); };
  // Per tile a warpgroup computes: issue S of this tile and P V of the one before, wait for S only,
  // run the softmax while that P V runs (FlashAttention-3's overlap within a warpgroup), then wait
  // for it and rescale O. The warpgroups meet only at mbarriers, not at a CTA barrier, so one's
  // softmax can run under the other's MMAs: tile n + 1's copies (every thread issues its share)
  // wait until both warpgroups are done with tile n - 1's K (its S and softmax) and tile n - 2's V
  // (its P V, which retires in the tile after it; a warpgroup that skips a tile frees at once).
  // One CTA barrier a tile instead: 1.570 ms a layer for an 8192-token causal prefill vs 1.520 (H200).
  for (int n = 0; cur < te; ++n) {
    const int nxt = tiles.next(cur + 1, &nr);
    if (nxt < te) {  // tile n + 1's copies, once both warpgroups are done with what its stages held
      const int t = n + 1;
      mbar_wait(smem_addr(&bar_kfree[t & 1]), ((t >> 1) & 1) ^ 1);
      mbar_wait(smem_addr(&bar_vfree[t % 3]), ((t / 3) & 1) ^ 1);
      load_tile(nxt, t);
      mbar_arrive_copies(smem_addr(&bar_full[t % 3]));
    }
    mbar_wait(smem_addr(&bar_full[n % 3]), (n / 3) & 1);
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // visible to wgmma's reads
    // Some key of the tile is visible to some row of this warpgroup (uniform to ptxas, as above).
    if (__shfl_sync(0xffffffffu, static_cast<int>(cr.x <= gmax), 0)) {
      const unsigned ks = k0 + (n & 1) * S::kTileBytes, vs = v0 + (n % 3) * S::kTileBytes;
      const int* kp = kps + (n & 1) * BN;
      const int j0 = cur * BN;
      float s[BN / 2];
      // With nothing pending, pp is zero: a P V of zeros on this tile's V keeps the MMA sequence free
      // of branches (ptxas serialises asynchronous MMAs whose accumulators meet at a branch's join).
      if (!pending) pend_v = vs;
      wg_fence();
      wg_issue_s<T, D>(s, qw, ks);
      wg_commit();
      wg_issue_pv<T, D>(o, pp, pend_v);
      wg_commit();
      // S only: waiting for P V too cost 1.647 vs 1.569 ms a layer (8192-token causal prefill, H200,
      // the loop with one CTA barrier a tile that the mbarriers replaced).
      wg_wait<1>();
      wg_pin(s);
      unsigned pn[BN / 8][2];
      float al[2], rs[2];
      if (cr.y <= gmin && j0 + BN <= p.nk)  // every key visible to every row of the warpgroup: no mask
        wg_softmax<true, T, BN>(s, kp, qr0, qr1, j0, p.nk, sl, m, al, rs, pn);
      else
        wg_softmax<false, T, BN>(s, kp, qr0, qr1, j0, p.nk, sl, m, al, rs, pn);
      wg_wait<0>();
      wg_pin(o);
      wg_pin_u(pp);
      mbar_arrive(smem_addr(&bar_kfree[n & 1]));  // K and positions of tile n read
      if (pending) vfree(pend_n);                  // its P V has retired
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) l[hf] = l[hf] * al[hf] + rs[hf];
      if (__any_sync(0xffffffffu, al[0] != 1.0f || al[1] != 1.0f)) {
#pragma unroll
        for (int a = 0; a < D / 8; ++a) {
          o[4 * a] *= al[0];
          o[4 * a + 1] *= al[0];
          o[4 * a + 2] *= al[1];
          o[4 * a + 3] *= al[1];
        }
      }
#pragma unroll
      for (int a = 0; a < BN / 8; ++a) {
        pp[a][0] = pn[a][0];
        pp[a][1] = pn[a][1];
      }
      pending = true;
      pend_v = vs;
      pend_n = n;
    } else {
      mbar_arrive(smem_addr(&bar_kfree[n & 1]));
      if (pending) {
        flush();
        vfree(pend_n);
      }
      vfree(n);
    }
    cur = nxt;
    cr = nr;
  }
  // Every copy has landed before the CTA exits, also Q's in a CTA that saw no tile (the mbarriers
  // track the copies; no cp.async group was committed, so wait_group would wait for nothing). The
  // last computed tile's V stage is never freed: nothing waits for it, the barriers die with the CTA.
  asm volatile("cp.async.wait_all;\n" ::: "memory");
  flush();

#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    l[hf] += __shfl_xor_sync(0xffffffffu, l[hf], 1);
    l[hf] += __shfl_xor_sync(0xffffffffu, l[hf], 2);
  }
  const size_t rows = static_cast<size_t>(p.nq) * p.hq;
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int i = i0 + row0 + hf * 8;
    if (i >= p.nq) continue;
    const size_t row = static_cast<size_t>(i) * p.hq + h;
    if (p.nsplit == 1) {
      const float inv = l[hf] > 0.0f ? 1.0f / l[hf] : 0.0f;
      unsigned* dst = reinterpret_cast<unsigned*>(static_cast<T*>(p.out) + row * D);
#pragma unroll
      for (int a = 0; a < D / 8; ++a) dst[a * 4 + tq] = pack2<T>(o[4 * a + 2 * hf] * inv, o[4 * a + 2 * hf + 1] * inv);
    } else {
      float2* dst = reinterpret_cast<float2*>(p.ws_acc + (static_cast<size_t>(split) * rows + row) * D);
#pragma unroll
      for (int a = 0; a < D / 8; ++a) dst[a * 4 + tq] = make_float2(o[4 * a + 2 * hf], o[4 * a + 2 * hf + 1]);
      if (tq == 0) emit_ml(p, split, row, m[hf], l[hf]);
    }
  }
#elif defined(__CUDA_ARCH__)
  __trap();  // built without sm_90a's wgmma: never launched (wg_runs_here), and loud if it were
#endif
}
