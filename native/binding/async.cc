#include "async.h"

#include <string>

#include "../core/status.h"
#include "errors.h"

namespace kv::binding {
namespace {

class EventWaiter : public Napi::AsyncWorker {
 public:
  EventWaiter(Napi::Env env, int device, cuda::Event ev, std::vector<std::shared_ptr<Storage>> keep)
      : Napi::AsyncWorker(env, "kvlab:wait"), deferred_(Napi::Promise::Deferred::New(env)),
        device_(device), event_(ev), keep_(std::move(keep)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      cuda::event_wait_and_destroy(device_, event_);
    } catch (const Error& e) {
      code_ = code_name(e.code);
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(make_error(Env(), code_.c_str(), e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  int device_;
  cuda::Event event_;
  std::vector<std::shared_ptr<Storage>> keep_;
  std::string code_ = "KVLAB_CUDA";
};

}  // namespace

Napi::Value wait_for_event(Napi::Env env, int device, cuda::Event event,
                           std::vector<std::shared_ptr<Storage>> keep_alive) {
  auto* w = new EventWaiter(env, device, event, std::move(keep_alive));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace kv::binding
