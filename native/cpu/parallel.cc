#include "parallel.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace kv::cpu {
namespace {

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
    quit_ = false;
    // New workers wait for the next run: a generation counted before they existed is no task of
    // theirs (starting from 0, a pool resized after a run took the finished run's null task).
    const unsigned long current = generation_;
    for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this, i, current] { loop(i, current); });
  }

  // Runs task(i) for i in [0, size()) with the caller taking index size()-1.
  void run(const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> lk(mu_);
    task_ = &task;
    pending_ = static_cast<int>(workers_.size());
    error_ = nullptr;
    ++generation_;
    cv_.notify_all();
    lk.unlock();
    try {
      task(size() - 1);
    } catch (...) {
      std::lock_guard<std::mutex> g(mu_);
      if (!error_) error_ = std::current_exception();
    }
    lk.lock();
    done_.wait(lk, [this] { return pending_ == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int idx, unsigned long seen) {
    for (;;) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
      if (quit_) return;
      seen = generation_;
      const std::function<void(int)>* task = task_;
      lk.unlock();
      try {
        (*task)(idx);
      } catch (...) {
        std::lock_guard<std::mutex> g(mu_);
        if (!error_) error_ = std::current_exception();
      }
      lk.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int pending_ = 0;
  unsigned long generation_ = 0;
  bool quit_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p(0);
  return p;
}
std::mutex& run_mutex() {  // one parallel region at a time (ops may be called from worker threads)
  static std::mutex m;
  return m;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  std::lock_guard<std::mutex> g(run_mutex());
  pool().resize(n);
}

void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  size_t threads = static_cast<size_t>(num_threads());
  size_t chunks = std::min(threads, (n + grain - 1) / grain);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  std::unique_lock<std::mutex> lk(run_mutex(), std::try_to_lock);
  if (!lk.owns_lock()) {  // nested or concurrent call: run inline rather than deadlock
    fn(0, n);
    return;
  }
  size_t per = (n + chunks - 1) / chunks;
  pool().run([&](int i) {
    size_t b = static_cast<size_t>(i) * per;
    if (b >= n || static_cast<size_t>(i) >= chunks) return;
    fn(b, std::min(n, b + per));
  });
}

}  // namespace kv::cpu
