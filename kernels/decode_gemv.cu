#include "decode_gemv.cuh"

#include "elem.cuh"
#include "pdl.cuh"

namespace kvk {
namespace {

// Programmatic dependent launch (pdl.cuh): each projection lets the next start its blocks while
// it drains, and waits for the previous kernel only after prefetching its first weights, which no
// kernel writes (a 7B decode step on an H100: 7.65 ms of layers with it, 7.96 without).
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

struct Parts {
  const void* w[kDecodeGemvMaxParts];
  const void* bias[kDecodeGemvMaxParts];
  void* out[kDecodeGemvMaxParts];
  int m[kDecodeGemvMaxParts];
  int nparts;
};

template <class T, int N, int EP, bool NORM>
__global__ void __launch_bounds__(256) decode_gemv_kernel(const T* __restrict__ x, const T* __restrict__ norm_w,
                                                          float eps, Parts p, int k, int rows) {
  allow_dependents();
  const int warp = static_cast<int>((static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5);
  const int lane = threadIdx.x & 31;
  if (warp >= rows) {
    wait_for_previous();
    return;
  }
  // Which part this warp's row belongs to (uniform across the warp). kSwiglu reads both parts' row.
  int part = 0, row = warp;
  if (EP != kSwiglu)
    while (part + 1 < p.nparts && row >= p.m[part]) row -= p.m[part++];
  constexpr int V = kVec16<T>;
  constexpr int NW = EP == kSwiglu ? 2 : 1;
  const T* wr[NW];
#pragma unroll
  for (int j = 0; j < NW; ++j)
    wr[j] = static_cast<const T*>(p.w[EP == kSwiglu ? j : part]) + static_cast<size_t>(row) * k;
  // Each lane's first four 16-byte weight loads towards L2 while the previous kernel may still run;
  // x and out are only touched after the wait.
#pragma unroll
  for (int j = 0; j < NW; ++j)
#pragma unroll
    for (int u = 0; u < 4; ++u)
      if (lane * V + u * 32 * V < k) prefetch_l2(wr[j] + lane * V + u * 32 * V);
  wait_for_previous();
  float acc[NW][N], ss[N];
#pragma unroll
  for (int r = 0; r < N; ++r) {
    ss[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < NW; ++j) acc[j][r] = 0.0f;
  }
  // U weight loads of 16 bytes in flight per lane and weight row before the first is used: with
  // few rows (4096 for the o and down projections) there are too few warps to cover the memory
  // latency otherwise (a 7B decode step's layers on an H100: 7.65 ms, 8.44 with one load a lane
  // unrolled 4 by the compiler). The per-lane order of the additions is unchanged: c increases.
  constexpr int U = NW == 2 ? 4 : 8;
  constexpr int kStep = 32 * V;
  for (int c0 = lane * V; c0 < k; c0 += U * kStep) {
    uint4 raw[NW][U];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int j = 0; j < NW; ++j)
        raw[j][u] = c0 + u * kStep < k ? load16_stream(wr[j] + c0 + u * kStep) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u * kStep;
      if (c >= k) break;
      float wv[NW][V], nv[V];
#pragma unroll
      for (int j = 0; j < NW; ++j) unpack16<T>(raw[j][u], wv[j]);
      if (NORM) load16(norm_w + c, nv);
#pragma unroll
      for (int r = 0; r < N; ++r) {
        float xv[V];
        load16(x + static_cast<size_t>(r) * k + c, xv);
        if (NORM) {
#pragma unroll
          for (int i = 0; i < V; ++i) {
            ss[r] = fmaf(xv[i], xv[i], ss[r]);
            xv[i] *= nv[i];
          }
        }
#pragma unroll
        for (int j = 0; j < NW; ++j)
#pragma unroll
          for (int i = 0; i < V; ++i) acc[j][r] = fmaf(wv[j][i], xv[i], acc[j][r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < N; ++r) {
    if (NORM) ss[r] = warp_sum(ss[r]);
#pragma unroll
    for (int j = 0; j < NW; ++j) acc[j][r] = warp_sum(acc[j][r]);
  }
  if (lane != 0) return;
  const int m = p.m[part];
  T* out = static_cast<T*>(p.out[part]);
  const T* bias = static_cast<const T*>(p.bias[part]);
#pragma unroll
  for (int r = 0; r < N; ++r) {
    const float s = NORM ? rsqrtf(ss[r] / static_cast<float>(k) + eps) : 1.0f;
    T* o = out + static_cast<size_t>(r) * m + row;
    if (EP == kSwiglu) {
      const float g = acc[0][r] * s, u = acc[1][r] * s;
      *o = from_f32<T>(g / (1.0f + __expf(-g)) * u);
    } else if (EP == kAddInto) {
      *o = from_f32<T>(to_f32(*o) + acc[0][r] * s);
    } else {
      *o = from_f32<T>(acc[0][r] * s + (bias ? to_f32(bias[row]) : 0.0f));
    }
  }
}

template <class T, int N, int EP, bool NORM>
cudaError_t launch(const void* x, const void* norm_w, float eps, const Parts& p, int k, int rows, cudaStream_t st) {
  constexpr unsigned kBlock = 256;  // 8 warps, 8 output rows
  const unsigned grid = static_cast<unsigned>((static_cast<size_t>(rows) * 32 + kBlock - 1) / kBlock);
  return launch_pdl(decode_gemv_kernel<T, N, EP, NORM>, dim3(grid), dim3(kBlock), 0, st, static_cast<const T*>(x),
                    static_cast<const T*>(norm_w), eps, p, k, rows);
}

// The three combinations the decode step uses: normalised QKV, projection + residual, normalised gate/up.
template <class T, int N>
cudaError_t launch_epilogue(int ep, const void* x, const void* norm_w, float eps, const Parts& p, int k, int rows,
                            cudaStream_t st) {
  const bool norm = norm_w != nullptr;
  if (ep == kStore && norm) return launch<T, N, kStore, true>(x, norm_w, eps, p, k, rows, st);
  if (ep == kAddInto && !norm) return launch<T, N, kAddInto, false>(x, norm_w, eps, p, k, rows, st);
  if (ep == kSwiglu && norm) return launch<T, N, kSwiglu, true>(x, norm_w, eps, p, k, rows, st);
  return cudaErrorInvalidValue;
}

size_t elem(int dtype) { return dtype == kF32 ? 4 : 2; }

}  // namespace

bool decode_gemv_supported(const void* x, const DecodeGemvPart* parts, int nparts, int dtype, size_t n, size_t k) {
  if (n == 0 || n > static_cast<size_t>(kDecodeGemvMaxRows) || nparts < 1 || nparts > kDecodeGemvMaxParts) return false;
  if (dtype != kF32 && dtype != kF16 && dtype != kBF16) return false;
  if (k == 0 || k > (1u << 30) || (k * elem(dtype)) % 16 != 0 || !aligned_to(x, 16)) return false;
  size_t rows = 0;
  for (int j = 0; j < nparts; ++j) {
    if (!parts[j].w || !parts[j].out || !aligned_to(parts[j].w, 16) || parts[j].m == 0 || parts[j].m > (1u << 30)) return false;
    rows += parts[j].m;
  }
  return rows <= (1u << 30);
}

cudaError_t decode_gemv(const void* x, const void* norm_w, float eps, const DecodeGemvPart* parts, int nparts,
                        int epilogue, int dtype, size_t n, size_t k, cudaStream_t stream) {
  if (!decode_gemv_supported(x, parts, nparts, dtype, n, k)) return cudaErrorInvalidValue;
  if (norm_w && !aligned_to(norm_w, 16)) return cudaErrorInvalidValue;
  if (epilogue == kSwiglu && (nparts != 2 || parts[0].m != parts[1].m)) return cudaErrorInvalidValue;
  if (epilogue == kAddInto && nparts != 1) return cudaErrorInvalidValue;
  Parts p{};
  p.nparts = nparts;
  size_t rows = 0;
  for (int j = 0; j < nparts; ++j) {
    p.w[j] = parts[j].w;
    p.bias[j] = parts[j].bias;
    p.out[j] = parts[j].out;
    p.m[j] = static_cast<int>(parts[j].m);
    rows += parts[j].m;
  }
  if (epilogue == kSwiglu) rows = parts[0].m;
  const int k_ = static_cast<int>(k), r_ = static_cast<int>(rows);
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    switch (n) {
      case 1: return launch_epilogue<T, 1>(epilogue, x, norm_w, eps, p, k_, r_, stream);
      case 2: return launch_epilogue<T, 2>(epilogue, x, norm_w, eps, p, k_, r_, stream);
      case 3: return launch_epilogue<T, 3>(epilogue, x, norm_w, eps, p, k_, r_, stream);
      case 4: return launch_epilogue<T, 4>(epilogue, x, norm_w, eps, p, k_, r_, stream);
      default: return cudaErrorInvalidValue;
    }
  });
}

}  // namespace kvk
