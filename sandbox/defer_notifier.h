// Services SECCOMP_RET_USER_NOTIF for a sandbox's defer rules: a thread
// receives each notification and holds it (the calling thread stays blocked
// in the kernel) until ReleaseAll() answers it with
// SECCOMP_USER_NOTIF_FLAG_CONTINUE, or the sandbox is destroyed (the task is
// killed; closing the listener would make the call fail with ENOSYS).
// Each action installs its own filter, hence one listener per action.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "sandbox/sandbox.h"

namespace specula::sandbox {

class DeferNotifier {
 public:
  DeferNotifier() = default;
  DeferNotifier(const DeferNotifier&) = delete;
  DeferNotifier& operator=(const DeferNotifier&) = delete;
  ~DeferNotifier() { Stop(); }

  Status Start();
  void AddListener(UniqueFd listener);
  std::vector<DeferredCall> Pending() const;
  Status ReleaseAll();
  // ReleaseAll, and from now on every call is continued as it arrives.
  Status Authorise();
  void Stop();  // joins the thread and closes the listeners

 private:
  struct Held {
    int listener;
    DeferredCall call;
  };
  void Loop();
  void Receive(int listener);
  void Wake();

  mutable std::mutex mu_;
  std::vector<UniqueFd> listeners_;
  std::map<uint64_t, Held> held_;
  UniqueFd wake_;  // eventfd: listeners changed or stop requested
  std::atomic<bool> stop_{false};
  // Set before Authorise takes mu_, read by Receive under mu_: a call is
  // either held (and released by Authorise) or continued on arrival.
  std::atomic<bool> authorised_{false};
  std::thread thread_;
};

}  // namespace specula::sandbox
