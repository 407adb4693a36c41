// Move-only owner of a file descriptor (sandbox2's FDCloser): closed exactly
// once, on destruction or Reset. Every fd the runtime opens is O_CLOEXEC and
// lives in one of these, so no error path leaks one.
#pragma once

#include <unistd.h>

#include <utility>

namespace specula {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);  // close() errors are not actionable here
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace specula
