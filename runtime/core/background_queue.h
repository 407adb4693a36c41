// One low-priority thread that runs jobs in the order they were posted: the
// teardown of discarded branches (kill, unmount, cgroup removal, removing
// the upper dir, the branch's record), so a commit or a branch.discard
// returns without paying for it (issue 15: discard off the critical path).
//
// FIFO matters: two teardowns of one session run in the order they were
// asked for. The thread runs at nice 10, so under load it gives way to the
// committed action and the branches that may still be hits.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace specula::core {

class BackgroundQueue {
 public:
  // nice: the thread's niceness increment. Processes forked from a job
  // inherit it, so a queue that starts sandboxes (the warm pool) runs at 0:
  // a pooled branch's commands must see the priority a fresh one's do.
  explicit BackgroundQueue(int nice = 10);
  // Runs everything still queued, then joins the thread.
  ~BackgroundQueue();
  BackgroundQueue(const BackgroundQueue&) = delete;
  BackgroundQueue& operator=(const BackgroundQueue&) = delete;

  // Queues `job`; it runs after every job posted before it. A job must not
  // throw (it runs on the queue's thread) and must not Drain().
  void Post(std::function<void()> job);
  // Returns once every job posted before the call has run.
  void Drain();

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::deque<std::function<void()>> jobs_;
  uint64_t posted_ = 0, finished_ = 0;
  bool stopping_ = false;
  int nice_;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace specula::core
