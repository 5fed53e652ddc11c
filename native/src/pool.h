// A few persistent helper threads shared by the addon's compute kernels (cross-attention, int8
// linears): one pool, so kernels called one after another reuse the same warm threads.
#pragma once
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wx {

// A few persistent helper threads (created on first use, one fewer than the threads asked for:
// the calling thread works too). A call hands each helper a share of the work and waits.
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
    std::unique_lock<std::mutex> lock(mu_);
    while (int(workers_.size()) < threads - 1) {
      const int id = int(workers_.size()) + 1;
      workers_.emplace_back([this, id] { Loop(id); });
    }
    job_ = &fn;
    parts_ = threads;
    pending_ = threads - 1;
    generation_++;
    wake_.notify_all();
    lock.unlock();
    fn(0, threads);
    lock.lock();
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
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
  void Loop(int id) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (id >= parts_) continue;
      const std::function<void(int, int)>* job = job_;
      const int parts = parts_;
      lock.unlock();
      (*job)(id, parts);
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex callers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  int parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

inline Pool& SharedPool() {
  static Pool* pool = new Pool();  // never destroyed: helpers may outlive module teardown order
  return *pool;
}

}  // namespace wx
