#include "common/error.h"

#include <cstring>

namespace specula {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kFailedPrecondition: return "failed_precondition";
    case Code::kUnavailable: return "unavailable";
    case Code::kResourceExhausted: return "resource_exhausted";
    case Code::kDeadlineExceeded: return "deadline_exceeded";
    case Code::kAborted: return "aborted";
    case Code::kDataLoss: return "data_loss";
    case Code::kInternal: return "internal";
  }
  return "unknown";
}

Code CodeFromErrno(int err) {
  switch (err) {
    case 0: return Code::kOk;
    case ENOENT: case ESRCH: return Code::kNotFound;
    case EEXIST: case ENOTEMPTY: return Code::kAlreadyExists;
    case EPERM: case EACCES: case EROFS: return Code::kPermissionDenied;
    case EINVAL: case ENAMETOOLONG: case ELOOP: case EXDEV: case ENOTDIR: case EISDIR:
      return Code::kInvalidArgument;
    case ENOSYS: case EOPNOTSUPP: case ENODEV: return Code::kUnavailable;
    case ENOMEM: case ENOSPC: case EMFILE: case ENFILE: case EAGAIN: case EDQUOT:
      return Code::kResourceExhausted;
    case ETIMEDOUT: return Code::kDeadlineExceeded;
    case EINTR: case ECANCELED: return Code::kAborted;
    case EBUSY: return Code::kFailedPrecondition;
    default: return Code::kInternal;
  }
}

Error Error::FromErrno(std::string_view what, int err) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Error(CodeFromErrno(err), std::move(msg), err);
}

Error& Error::Context(std::string_view context) & {
  std::string msg(context);
  msg += ": ";
  msg += message_;
  message_ = std::move(msg);
  return *this;
}

Error&& Error::Context(std::string_view context) && {
  Context(context);
  return std::move(*this);
}

std::string Error::ToString() const {
  if (hint_.empty()) return message_;
  return message_ + " (hint: " + hint_ + ")";
}

}  // namespace specula
