#include "runtime/core/background_queue.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace specula::core {

BackgroundQueue::BackgroundQueue(int nice) : nice_(nice), thread_([this] { Loop(); }) {}

BackgroundQueue::~BackgroundQueue() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void BackgroundQueue::Post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
    ++posted_;
  }
  wake_.notify_one();
}

void BackgroundQueue::Drain() {
  std::unique_lock lock(mu_);
  const uint64_t target = posted_;
  done_.wait(lock, [&] { return finished_ >= target; });
}

void BackgroundQueue::Loop() {
  // This thread only: the daemon's other threads keep their priority.
  if (nice_ != 0 && ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice_) != 0) {
    spdlog::debug("background queue: setpriority: {}", std::strerror(errno));
  }
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and nothing left to run
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
    ++finished_;
    done_.notify_all();
  }
}

}  // namespace specula::core
