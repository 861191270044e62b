// Running oneDNN on XLA's thread pool: one sequential oneDNN call per chunk of work.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

// libgomp: oneDNN's threading runtime in the wheel this is built against
extern "C" void omp_set_num_threads(int);
extern "C" int omp_get_max_threads();

namespace fnn_onednn {

// While alive, oneDNN runs sequentially on this thread (OpenMP's thread count 1);
// then the count is as it was, for other OpenMP code on the thread.
class Sequential {
 public:
  Sequential() : threads_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~Sequential() { omp_set_num_threads(threads_); }

 private:
  int threads_;
};

// Runs body(i) for every chunk i in [0, chunks) on the calling thread and up to
// chunks - 1 tasks on `pool`. Chunks are claimed from a counter, so the caller
// waits only for chunks another thread has begun: never for a task the pool
// has not started (which could wait behind this very call).
// The first error a chunk throws goes to `error` ("" when none).
inline void ForEachChunk(xla::ffi::ThreadPool& pool, int64_t chunks,
                         const std::function<void(int64_t)>& body, std::string* error) {
  struct State {
    std::atomic<int64_t> next{0};
    int64_t chunks = 0, done = 0;
    std::function<void(int64_t)> body;
    std::mutex mutex;
    std::condition_variable finished;
    std::string error;
  };
  auto state = std::make_shared<State>();
  state->chunks = chunks;
  state->body = body;
  auto work = [state] {
    Sequential sequential;
    for (int64_t i; (i = state->next.fetch_add(1)) < state->chunks;) {
      std::string err;
      try {
        state->body(i);
      } catch (const dnnl::error& e) {
        err = std::string("oneDNN: ") + e.what();
      } catch (const std::exception& e) {
        err = e.what();
      }
      std::lock_guard<std::mutex> guard(state->mutex);
      if (!err.empty() && state->error.empty()) state->error = err;
      if (++state->done == state->chunks) state->finished.notify_all();
    }
  };
  for (int64_t t = 1; t < chunks; ++t) pool.Schedule([work] { work(); });
  work();
  std::unique_lock<std::mutex> lock(state->mutex);
  state->finished.wait(lock, [&] { return state->done == state->chunks; });
  *error = state->error;
}

}  // namespace fnn_onednn
