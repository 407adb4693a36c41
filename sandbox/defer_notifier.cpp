#include "sandbox/defer_notifier.h"

#include <poll.h>
#include <seccomp.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sandbox/seccomp_filter.h"

namespace specula::sandbox {
namespace {

// libseccomp's notification buffers (sized for the running kernel).
class NotifyBuffers {
 public:
  NotifyBuffers() {
    if (seccomp_notify_alloc(&req_, &resp_) != 0) req_ = nullptr, resp_ = nullptr;
  }
  NotifyBuffers(const NotifyBuffers&) = delete;
  NotifyBuffers& operator=(const NotifyBuffers&) = delete;
  ~NotifyBuffers() { seccomp_notify_free(req_, resp_); }
  bool ok() const { return req_ != nullptr; }
  seccomp_notif* req() { return req_; }
  seccomp_notif_resp* resp() { return resp_; }

 private:
  seccomp_notif* req_ = nullptr;
  seccomp_notif_resp* resp_ = nullptr;
};

}  // namespace

Status DeferNotifier::Start() {
  wake_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) return Error::FromErrno("defer notifier: eventfd");
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void DeferNotifier::Wake() {
  uint64_t one = 1;
  ssize_t w = ::write(wake_.get(), &one, sizeof(one));
  (void)w;
}

void DeferNotifier::AddListener(UniqueFd listener) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    listeners_.push_back(std::move(listener));
  }
  Wake();
}

void DeferNotifier::Receive(int listener) {
  NotifyBuffers buf;
  if (!buf.ok()) return;
  if (seccomp_notify_receive(listener, buf.req()) != 0) return;  // task died meanwhile
  DeferredCall call{};
  call.id = buf.req()->id;
  call.pid = static_cast<pid_t>(buf.req()->pid);
  call.syscall = SyscallName(buf.req()->data.nr);
  std::copy(std::begin(buf.req()->data.args), std::end(buf.req()->data.args), call.args);
  call.since = std::chrono::system_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (authorised_.load()) {
    buf.resp()->id = call.id;
    buf.resp()->val = 0;
    buf.resp()->error = 0;
    buf.resp()->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    int rc = seccomp_notify_respond(listener, buf.resp());
    if (rc != 0 && rc != -ENOENT) spdlog::warn("sandbox: continue {}: {}", call.syscall, std::strerror(-rc));
    return;
  }
  spdlog::debug("sandbox: deferred {} from pid {}", call.syscall, call.pid);
  held_[call.id] = Held{listener, call};
}

void DeferNotifier::Loop() {
  while (!stop_.load()) {
    std::vector<pollfd> fds;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fds.push_back({wake_.get(), POLLIN, 0});
      for (const auto& l : listeners_) fds.push_back({l.get(), POLLIN, 0});
    }
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) continue;  // EINTR
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      ssize_t r = ::read(wake_.get(), &v, sizeof(v));
      (void)r;
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) {
        Receive(fds[i].fd);
      } else if (fds[i].revents & (POLLHUP | POLLERR)) {
        // No task uses this filter any more: drop it and what it held.
        std::lock_guard<std::mutex> lock(mu_);
        std::erase_if(held_, [&](const auto& kv) { return kv.second.listener == fds[i].fd; });
        std::erase_if(listeners_, [&](const UniqueFd& l) { return l.get() == fds[i].fd; });
      }
    }
  }
}

std::vector<DeferredCall> DeferNotifier::Pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DeferredCall> out;
  for (const auto& [id, h] : held_) {
    if (seccomp_notify_id_valid(h.listener, id) == 0) out.push_back(h.call);
  }
  return out;
}

Status DeferNotifier::ReleaseAll() {
  std::lock_guard<std::mutex> lock(mu_);
  NotifyBuffers buf;
  if (!buf.ok()) return Error(Code::kInternal, "seccomp_notify_alloc failed");
  Status result;
  for (const auto& [id, h] : held_) {
    buf.resp()->id = id;
    buf.resp()->val = 0;
    buf.resp()->error = 0;
    buf.resp()->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    int rc = seccomp_notify_respond(h.listener, buf.resp());
    // -ENOENT: the task died or was interrupted; nothing to release.
    if (rc != 0 && rc != -ENOENT && result.ok()) {
      result = Error::FromErrno("release deferred " + h.call.syscall, -rc);
    }
  }
  held_.clear();
  return result;
}

Status DeferNotifier::Authorise() {
  authorised_.store(true);
  return ReleaseAll();
}

void DeferNotifier::Stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    Wake();
    thread_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  held_.clear();
  listeners_.clear();
  wake_.Reset();
}

}  // namespace specula::sandbox
