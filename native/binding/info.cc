// What the addon was built with and what it sees: the facts `kvlab doctor` reports.
#include <thread>

#include "../cpu/parallel.h"
#include "../cuda/runtime.h"
#include "args.h"
#include "build_info.h"
#include "errors.h"
#include "exports.h"

namespace kv::binding {
namespace {

Napi::Value build_info(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("version", KVLAB_VERSION);
    o.Set("napiVersion", NAPI_VERSION);
    o.Set("buildType", KVLAB_BUILD_TYPE);
    o.Set("compiler", KVLAB_CXX_COMPILER);
    o.Set("cudaCompiled", static_cast<bool>(KVLAB_CUDA_COMPILED));
    o.Set("cudaReason", KVLAB_CUDA_REASON);
    o.Set("nvccVersion", KVLAB_NVCC_VERSION);
    o.Set("cudaArchitectures", KVLAB_CUDA_ARCHS);
    o.Set("kernelsCompiled", KVLAB_KERNELS_COMPILED);
    o.Set("cublasFoundAtBuild", static_cast<bool>(KVLAB_CUBLAS_FOUND));
    return o;
  });
}

Napi::Value cuda_info(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Napi::Env env = info.Env();
    const cuda::Info& in = cuda::info();
    Napi::Object o = Napi::Object::New(env);
    o.Set("compiled", in.compiled);
    o.Set("available", in.available);
    o.Set("reason", in.reason);
    o.Set("driverVersion", in.driver_version);
    o.Set("runtimeVersion", in.runtime_version);
    o.Set("cublas", in.cublas);
    o.Set("cublasVersion", in.cublas_version);
    o.Set("cublasReason", in.cublas_reason);
    Napi::Array devs = Napi::Array::New(env);
    for (size_t i = 0; i < in.devices.size(); ++i) {
      const cuda::DeviceInfo& d = in.devices[i];
      Napi::Object x = Napi::Object::New(env);
      x.Set("index", d.index);
      x.Set("name", d.name);
      x.Set("totalMemory", static_cast<double>(d.total_memory));
      x.Set("freeMemory", static_cast<double>(d.free_memory));
      x.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
      x.Set("multiprocessors", d.multiprocessors);
      x.Set("l2Bytes", static_cast<double>(d.l2_bytes));
      // Peak DRAM bandwidth from the memory clock and bus (x2 for double data rate), in GB/s.
      x.Set("peakBandwidthGBs", 2.0 * d.memory_clock_khz * 1e3 * (d.memory_bus_bits / 8.0) / 1e9);
      devs.Set(static_cast<uint32_t>(i), x);
    }
    o.Set("devices", devs);
    return o;
  });
}

Napi::Value cpu_threads(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("pool", cpu::num_threads());
    o.Set("hardware", static_cast<double>(std::thread::hardware_concurrency()));
    return o;
  });
}

Napi::Value set_cpu_threads(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    int n = arg_int(info, 0, "setCpuThreads", "threads");
    if (n < 0 || n > 1024) fail(Code::Arg, "setCpuThreads: threads must be in [0, 1024] (0 = all cores)");
    cpu::set_num_threads(n);
    return Napi::Number::New(info.Env(), cpu::num_threads());
  });
}

}  // namespace

void export_info(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, build_info, "buildInfo"));
  exports.Set("cudaInfo", Napi::Function::New(env, cuda_info, "cudaInfo"));
  exports.Set("cpuThreads", Napi::Function::New(env, cpu_threads, "cpuThreads"));
  exports.Set("setCpuThreads", Napi::Function::New(env, set_cpu_threads, "setCpuThreads"));
}

}  // namespace kv::binding
