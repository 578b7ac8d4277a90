// Shared checks for the op entry points: a buffer argument with its required byte size, all on one
// device, the optional stream on that device, and the dtypes each backend computes in.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <memory>

#include "../core/dtype.h"
#include "../core/storage.h"
#include "args.h"

namespace kv::binding {

struct Buf {
  std::shared_ptr<Storage> s;
  template <typename T = void>
  T* ptr() const { return s ? static_cast<T*>(s->data) : nullptr; }
};

// Argument i must be a storage of at least `bytes` bytes.
Buf arg_buf(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, size_t bytes);
// Like arg_buf, but null/undefined gives an empty Buf.
Buf arg_buf_or_null(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, size_t bytes);

// Checks that every non-empty buffer is on one device and returns it; checks the stream's device.
int common_device(const char* fn, std::initializer_list<const Buf*> bufs, const StreamHandle* stream);

// The CPU reference computes in f32: other float dtypes are a DType error naming the op.
void require_cpu_f32(const char* fn, DType t);
// CUDA ops take f32, f16 or bf16.
void require_float(const char* fn, DType t);

// Host-side index checks: every idx[i] in [0, limit), distinct when `unique`. Indices in device
// memory are not read here (the kernels guard what they can; the TypeScript side checks the rest).
void check_indices(const char* fn, const Buf& idx, size_t n, size_t limit, bool unique);

// a * b with overflow checked (element counts times widths).
size_t mul(const char* fn, std::initializer_list<size_t> xs);

}  // namespace kv::binding
