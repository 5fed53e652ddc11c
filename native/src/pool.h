// A few persistent helper threads shared by the addon's compute kernels (cross-attention, int8
// linears): one pool, so kernels called one after another reuse the same warm threads.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wx {

// A few persistent helper threads (created on first use, one fewer than the threads asked for:
// the calling thread works too). A call hands each helper a share of the work and waits.
//
// A decoder step makes ~30 kernel calls tens of microseconds apart; waking a sleeping thread
// costs about as much as such a call. So helpers spin briefly after each job before they sleep,
// and the caller spins briefly for their results: calls in quick succession hand off in well under
// a microsecond, and an idle daemon still sleeps.
class Pool {
 public:
  void Run(int threads, const std::function<void(int, int)>& fn) {
    threads = std::max(1, std::min(threads, 16));
    if (threads == 1) {
      fn(0, 1);
      return;
    }
    // Models in different worker threads (a model switch lets the old one finish its jobs) share
    // the pool: their calls take turns.
    std::lock_guard<std::mutex> turn(callers_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (int(workers_.size()) < threads - 1) {
        const int id = int(workers_.size()) + 1;
        workers_.emplace_back([this, id] { Loop(id); });
      }
      job_ = &fn;
      parts_ = threads;
      pending_.store(threads - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      wake_.notify_all();
    }
    fn(0, threads);
    if (!SpinUntil([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      wake_.notify_all();
    }
    for (auto& t : workers_) t.join();
  }

 private:
  // Polls `ready` for up to ~100 µs.
  template <typename F>
  static bool SpinUntil(F ready) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    for (int i = 0;; i++) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return false;
    }
  }

  void Loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      if (!SpinUntil([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
      }
      const std::function<void(int, int)>* job;
      int parts;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        parts = parts_;
      }
      if (id >= parts) continue;
      (*job)(id, parts);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_.notify_one();
      }
    }
  }

  std::mutex callers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  int parts_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

inline Pool& SharedPool() {
  static Pool* pool = new Pool();  // never destroyed: helpers may outlive module teardown order
  return *pool;
}

}  // namespace wx
