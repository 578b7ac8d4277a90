// The CUDA side of native/cuda/ops.h: checks dtypes, makes the device current, launches the kernels
// of kernels/ (or cuBLAS for matmul) on the caller's stream, and turns every cudaError_t and
// cublasStatus_t into kv::Error naming the op. Nothing here synchronises.
//
// Scratch memory (attention's split-K partials, sample's e array for large vocabularies, cuBLAS's
// workspace) comes from a stream-ordered memory pool that kvlab owns, one per device: allocated on
// the op's stream and freed on it when the op has been queued, so work on other streams can never
// see a buffer that is still in use, and nothing leaks when streams come and go.
#include "ops.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "../../kernels/add.cuh"
#include "../../kernels/decode_gemv.cuh"
#include "../../kernels/deviation.cuh"
#include "../../kernels/attention.cuh"
#include "../../kernels/attention_mass.cuh"
#include "../../kernels/embedding.cuh"
#include "../../kernels/gemv.cuh"
#include "../../kernels/rmsnorm.cuh"
#include "../../kernels/rope.cuh"
#include "../../kernels/rows.cuh"
#include "../../kernels/sample.cuh"
#include "../../kernels/swiglu.cuh"
#include "../core/status.h"
#include "../core/storage.h"
#include "check.h"

namespace kv::cuda {
namespace {

using detail::check;
using detail::set_device;

cudaStream_t as_stream(Stream s) { return static_cast<cudaStream_t>(s); }

void require_float(DType t, const char* op) {
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
    fail(Code::DType, std::string(op) + ": expected f32, f16 or bf16, got " + dtype_name(t));
}

void check_kernel(cudaError_t e, const char* op) {
  if (e != cudaSuccess) check(e, (std::string("kernel ") + op).c_str());
}

// ---- scratch ------------------------------------------------------------------------------------

struct PoolSlot {
  std::once_flag once;
  cudaMemPool_t pool = nullptr;  // null where the device has no memory pools
};
PoolSlot g_pools[kMaxCudaDevices];

// Keeps up to this many bytes cached in the pool across synchronisations (the default, 0, would hand
// memory back to the driver at every synchronisation and allocate it again on the next decode step).
constexpr uint64_t kPoolKeepBytes = uint64_t(256) << 20;

cudaMemPool_t scratch_pool(int device) {
  PoolSlot& slot = g_pools[device];
  std::call_once(slot.once, [&] {
    int supported = 0;
    if (cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess || !supported) {
      cudaGetLastError();
      return;
    }
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    cudaMemPool_t pool = nullptr;
    if (cudaMemPoolCreate(&pool, &props) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    uint64_t keep = kPoolKeepBytes;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    cudaGetLastError();
    slot.pool = pool;
  });
  return slot.pool;
}

// Device scratch for one op, freed on the op's stream when the object goes out of scope (after the
// op has been queued). Optional scratch is simply absent (get() == nullptr) when it cannot be had;
// required scratch throws kv::Error(OOM) instead.
class Scratch {
 public:
  Scratch(int device, size_t bytes, cudaStream_t stream, bool required, const char* op) : stream_(stream) {
    if (bytes == 0) return;
    cudaMemPool_t pool = scratch_pool(device);
    cudaError_t e;
    if (pool) {
      e = cudaMallocFromPoolAsync(&ptr_, bytes, pool, stream);
    } else if (required) {
      e = cudaMalloc(&ptr_, bytes);  // no pools on this device: a plain allocation, freed synchronously
      sync_free_ = true;
    } else {
      return;
    }
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      cudaGetLastError();
      if (required)
        fail(e == cudaErrorMemoryAllocation ? Code::OOM : Code::Cuda,
             std::string(op) + ": scratch allocation of " + std::to_string(bytes) + " bytes failed: " +
                 detail::describe(e));
    }
  }
  ~Scratch() {
    if (!ptr_) return;
    if (sync_free_) cudaFree(ptr_);  // waits for the device, so the op is done with it
    else cudaFreeAsync(ptr_, stream_);
    cudaGetLastError();
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
  bool sync_free_ = false;
};

// ---- cuBLAS -------------------------------------------------------------------------------------

// One handle per device, created on first use and kept for the life of the process (destroying it
// at exit can race the driver's own teardown). The mutex covers set-stream, set-workspace and the
// GEMM call, which must not interleave between threads.
struct BlasSlot {
  std::mutex mu;
  cublasHandle_t handle = nullptr;
};
BlasSlot g_blas[kMaxCudaDevices];

void check_blas(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  cudaGetLastError();
  fail(s == CUBLAS_STATUS_ALLOC_FAILED ? Code::OOM : Code::Cuda,
       std::string(what) + " failed: " + cublasGetStatusName(s) + ": " + cublasGetStatusString(s));
}

cudaDataType_t blas_type(DType t) {
  switch (t) {
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

// The workspace NVIDIA recommends for cublasSetWorkspace: 32 MiB on Hopper, 4 MiB before it.
size_t blas_workspace_bytes(int device) {
  const Info& in = info();
  const int major = device < static_cast<int>(in.devices.size()) ? in.devices[device].cc_major : 0;
  return (major >= 9 ? size_t(32) : size_t(4)) << 20;
}

}  // namespace

void embedding(int device, const int32_t* ids, size_t n, const void* table, DType table_type, size_t dim,
               void* out, DType out_type, Stream s) {
  require_float(table_type, "embedding");
  require_float(out_type, "embedding");
  set_device(device);
  check_kernel(kvk::embedding(ids, n, table, static_cast<int>(table_type), dim, out, static_cast<int>(out_type),
                              as_stream(s)),
               "embedding");
}

void rmsnorm(int device, const void* x, const void* w, void* out, DType type, size_t n, size_t dim, float eps,
             Stream s) {
  require_float(type, "rmsnorm");
  set_device(device);
  check_kernel(kvk::rmsnorm(x, w, out, static_cast<int>(type), n, dim, eps, as_stream(s)), "rmsnorm");
}

// Row-major out[n, m] = x[n, k] . w[m, k]^T through column-major cuBLAS. A row-major [r, c] matrix
// with leading dimension c is the column-major [c, r] matrix, its transpose. So, column-major:
//   x is X' = x^T [k, n] (ld k), w is W' = w^T [k, m] (ld k), out is O' = out^T [m, n] (ld m), and
//   out^T = (x w^T)^T = w x^T = W'^T X'.
// That is cublasGemmEx(transa = T, transb = N, M = m, N = n, K = k, A = w (lda k), B = x (ldb k),
// C = out (ldc m)). With a bias, out is first filled with the bias rows and beta = 1, so cuBLAS
// forms x w^T + bias in f32 and rounds once.
namespace {

// out = x w^T (+ bias) or, with `accumulate`, out += x w^T: cuBLAS reads out as C with beta = 1, so the
// sum is formed in f32 and rounded once (the residual add of a projection, without its own pass).
void gemm(int device, const void* x, const void* w, const void* bias, void* out, DType type, size_t n, size_t k,
          size_t m, bool accumulate, Stream s, const char* fn) {
  require_float(type, fn);
  set_device(device);
  if (n == 0 || m == 0) return;
  if (n > INT_MAX || k > INT_MAX || m > INT_MAX)
    fail(Code::Shape, std::string(fn) + ": sizes n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" +
                          std::to_string(m) + " exceed cuBLAS's int range");
  cudaStream_t st = as_stream(s);
  // Decode shapes (a few rows) are bound by reading w: kvlab's gemv streams it at close to the
  // memory bandwidth, where cuBLAS's GEMM kernels for n = 1 leave bandwidth unused.
  if (kvk::gemv_supported(x, w, out, static_cast<int>(type), n, k)) {
    check_kernel(kvk::gemv(x, w, bias, out, static_cast<int>(type), n, k, m, accumulate, st), fn);
    return;
  }
  if (bias) check_kernel(kvk::bias_rows(bias, out, static_cast<int>(type), n, m, st), fn);
  if (k == 0) {
    if (!bias && !accumulate) check(cudaMemsetAsync(out, 0, n * m * dtype_size(type), st), fn);
    return;
  }
  const size_t ws_bytes = blas_workspace_bytes(device);
  Scratch ws(device, ws_bytes, st, false, fn);
  BlasSlot& slot = g_blas[device];
  std::lock_guard<std::mutex> lock(slot.mu);
  if (!slot.handle) check_blas(cublasCreate(&slot.handle), "matmul: cublasCreate");
  // cublasSetStream also resets the workspace to cuBLAS's own pool, so ours is set after it.
  check_blas(cublasSetStream(slot.handle, st), "matmul: cublasSetStream");
  if (ws.get()) check_blas(cublasSetWorkspace(slot.handle, ws.get(), ws_bytes), "matmul: cublasSetWorkspace");
  const float alpha = 1.0f, beta = bias || accumulate ? 1.0f : 0.0f;
  const cudaDataType_t dt = blas_type(type);
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  check_blas(cublasGemmEx(slot.handle, CUBLAS_OP_T, CUBLAS_OP_N, im, in, ik, &alpha, w, dt, ik, x, dt, ik, &beta,
                          out, dt, im, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "matmul: cublasGemmEx");
}

}  // namespace

void matmul(int device, const void* x, const void* w, const void* bias, void* out, DType type, size_t n,
            size_t k, size_t m, Stream s) {
  gemm(device, x, w, bias, out, type, n, k, m, false, s, "matmul");
}

void matmul_add(int device, const void* x, const void* w, void* out, DType type, size_t n, size_t k, size_t m,
                Stream s) {
  gemm(device, x, w, nullptr, out, type, n, k, m, true, s, "matmul_add");
}

void rope(int device, void* x, DType type, const int32_t* pos, const float* inv_freq, size_t n, size_t heads,
          size_t head_dim, Stream s) {
  require_float(type, "rope");
  if (head_dim % 2 != 0) fail(Code::Shape, "rope: head_dim must be even, got " + std::to_string(head_dim));
  set_device(device);
  check_kernel(kvk::rope(x, static_cast<int>(type), pos, inv_freq, n, heads, head_dim, as_stream(s)), "rope");
}

void rope_qk_scatter(int device, void* q, const void* k, const void* v, DType type, const int32_t* pos,
                     const float* inv_freq, const int32_t* slots, void* k_cache, void* v_cache, size_t n, size_t hq,
                     size_t hkv, size_t head_dim, Stream s) {
  require_float(type, "rope_qk_scatter");
  if (head_dim % 2 != 0) fail(Code::Shape, "rope_qk_scatter: head_dim must be even, got " + std::to_string(head_dim));
  set_device(device);
  check_kernel(kvk::rope_qk_scatter(q, k, v, static_cast<int>(type), pos, inv_freq, slots, k_cache, v_cache, n, hq, hkv,
                                    head_dim, as_stream(s)),
               "rope_qk_scatter");
}

void attention(int device, const void* q, const void* k, const void* v, DType type, const int32_t* qpos,
               const int32_t* kpos, void* out, size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale,
               Stream s) {
  require_float(type, "attention");
  if (d == 0 || d > 256) fail(Code::Shape, "attention: head_dim must be in [1, 256], got " + std::to_string(d));
  if (hq == 0 || hkv == 0 || hq % hkv != 0)
    fail(Code::Shape, "attention: query heads (" + std::to_string(hq) + ") must be a positive multiple of kv heads (" +
                          std::to_string(hkv) + ")");
  if (hq > 65535 || nq > INT_MAX || nk > INT_MAX || nq * hq > INT_MAX)
    fail(Code::Shape, "attention: sizes too large for the kernel (nq=" + std::to_string(nq) + ", nk=" +
                          std::to_string(nk) + ", hq=" + std::to_string(hq) + ")");
  set_device(device);
  const kvk::AttentionArgs a{q, k, v, static_cast<int>(type), qpos, kpos, out, nq, nk, hq, hkv, d, scale};
  const size_t ws_bytes = kvk::attention_workspace_bytes(a);
  Scratch ws(device, ws_bytes, as_stream(s), false, "attention");
  check_kernel(kvk::attention(a, ws.get(), ws.get() ? ws_bytes : 0, as_stream(s)), "attention");
}

void attention_mass(int device, const void* q, const void* k, DType type, const int32_t* qpos, const int32_t* kpos,
                    float* out, size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale, Stream s) {
  require_float(type, "attention_mass");
  if (d == 0 || d > kvk::kAttentionMassMaxHeadDim)
    fail(Code::Shape, "attention_mass: head_dim must be in [1, " + std::to_string(kvk::kAttentionMassMaxHeadDim) +
                          "] on CUDA, got " + std::to_string(d));
  if (hq == 0 || hkv == 0 || hq % hkv != 0)
    fail(Code::Arg, "attention_mass: query heads (" + std::to_string(hq) + ") must be a positive multiple of kv heads (" +
                        std::to_string(hkv) + ")");
  if (hq > INT_MAX || nq > static_cast<size_t>(INT_MAX) / hq || nk > INT_MAX)
    fail(Code::Shape, "attention_mass: sizes too large for the kernel (nq=" + std::to_string(nq) + ", nk=" +
                          std::to_string(nk) + ", hq=" + std::to_string(hq) + ")");
  if (!(std::isfinite(scale) && scale > 0.0f))
    fail(Code::Arg, "attention_mass: scale must be finite and > 0, got " + std::to_string(scale));
  set_device(device);
  if (nk == 0) return;
  const size_t ws_bytes = kvk::attention_mass_workspace_bytes(nq, hq, nk);
  Scratch ws(device, ws_bytes, as_stream(s), true, "attention_mass");
  check_kernel(kvk::attention_mass(q, k, static_cast<int>(type), qpos, kpos, out, nq, nk, hq, hkv, d, scale, ws.get(),
                                   ws_bytes, as_stream(s)),
               "attention_mass");
}

void swiglu(int device, const void* gate, const void* up, void* out, DType type, size_t n, Stream s) {
  require_float(type, "swiglu");
  set_device(device);
  check_kernel(kvk::swiglu(gate, up, out, static_cast<int>(type), n, as_stream(s)), "swiglu");
}

void add(int device, const void* a, const void* b, void* out, DType type, size_t n, Stream s) {
  require_float(type, "add");
  set_device(device);
  check_kernel(kvk::add(a, b, out, static_cast<int>(type), n, as_stream(s)), "add");
}

namespace {
std::vector<kvk::DecodeGemvPart> kernel_parts(const DecodeGemvPart* parts, int nparts) {
  std::vector<kvk::DecodeGemvPart> out(static_cast<size_t>(nparts > 0 ? nparts : 0));
  for (size_t j = 0; j < out.size(); ++j) out[j] = {parts[j].w, parts[j].bias, parts[j].out, parts[j].m};
  return out;
}
}  // namespace

bool decode_gemv_supported(const void* x, const DecodeGemvPart* parts, int nparts, DType type, size_t n, size_t k) {
  const auto kp = kernel_parts(parts, nparts);
  return kvk::decode_gemv_supported(x, kp.data(), nparts, static_cast<int>(type), n, k);
}

void decode_gemv(int device, const void* x, const void* norm_w, float eps, const DecodeGemvPart* parts, int nparts,
                 DecodeEpilogue ep, DType type, size_t n, size_t k, Stream s) {
  require_float(type, "decode_gemv");
  set_device(device);
  const auto kp = kernel_parts(parts, nparts);
  check_kernel(kvk::decode_gemv(x, norm_w, eps, kp.data(), nparts, static_cast<int>(ep), static_cast<int>(type), n, k,
                                as_stream(s)),
               "decode_gemv");
}

void row_sq_diff(int device, const void* a, const void* b, const int32_t* b_rows, float* out, DType type, size_t n, size_t w,
                 bool accumulate, Stream s) {
  require_float(type, "row_sq_diff");
  set_device(device);
  check_kernel(kvk::row_sq_diff(a, b, b_rows, out, static_cast<int>(type), n, w, accumulate, as_stream(s)), "row_sq_diff");
}

void top_k_rows(int device, const float* v, size_t n, size_t k, int32_t* out, Stream s) {
  set_device(device);
  check_kernel(kvk::top_k_rows(v, n, k, out, as_stream(s)), "top_k_rows");
}

void gather_rows(int device, const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                 Stream s) {
  set_device(device);
  check_kernel(kvk::gather_rows(src, idx, dst, n, width_bytes, as_stream(s)), "gather_rows");
}

void scatter_rows(int device, const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                  Stream s) {
  set_device(device);
  check_kernel(kvk::scatter_rows(src, idx, dst, n, width_bytes, as_stream(s)), "scatter_rows");
}

void sample(int device, const float* logits, size_t vocab, float temperature, float top_p, float u,
            int32_t* out_id, Stream s) {
  if (vocab == 0 || vocab > static_cast<size_t>(INT_MAX) - 1024)
    fail(Code::Shape, "sample: vocab must be in [1, 2^31 - 1024], got " + std::to_string(vocab));
  set_device(device);
  const size_t bytes = temperature > 0.0f ? kvk::sample_scratch_bytes(vocab) : 0;
  Scratch ws(device, bytes, as_stream(s), true, "sample");
  check_kernel(kvk::sample(logits, vocab, temperature, top_p, u, out_id, ws.get(), as_stream(s)), "sample");
}

}  // namespace kv::cuda
