// A fixed set of threads running queued method calls, so a long call
// (action.commit can run for minutes) never blocks the daemon's I/O loop.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace specula::rpc {

class WorkerPool {
 public:
  // A task is called exactly once: cancelled=false when a worker runs it,
  // cancelled=true when the pool is cancelling queued work (shutdown), so
  // the task can still answer its caller ("daemon is shutting down").
  using Task = std::function<void(bool cancelled)>;

  WorkerPool(std::string name, size_t threads);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool();  // cancels queued tasks, waits for running ones

  // False (task not queued, not called) once CancelPending has been called.
  bool Submit(Task task);
  // Stops accepting tasks and calls every queued task with cancelled=true on
  // the calling thread. Running tasks are not interrupted.
  void CancelPending();
  size_t queued() const;

 private:
  void WorkerLoop();

  std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace specula::rpc
