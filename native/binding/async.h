// Promises for queued GPU work: a worker thread waits on a CUDA event while the storages the work
// touches are kept alive; the promise rejects with a typed error if the wait reports a failure.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "../core/storage.h"
#include "../cuda/runtime.h"

namespace kv::binding {

Napi::Value wait_for_event(Napi::Env env, int device, cuda::Event event,
                           std::vector<std::shared_ptr<Storage>> keep_alive);

}  // namespace kv::binding
