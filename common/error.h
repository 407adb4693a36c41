// The project's one error model (docs/error-model.md).
//
// Library code never throws across its public interface: every fallible
// function returns Status or Result<T>. An Error carries
//   - a Code (what kind of failure; the daemon maps it to a JSON-RPC code and
//     the CLI to an exit status),
//   - the errno of the failing system call, if any (0 otherwise),
//   - a message built from context added on the way up ("seal layer 3: rename
//     upper: Permission denied"), innermost last,
//   - an optional hint: what a person can do about it.
// Exceptions thrown by third-party libraries (toml++, nlohmann::json,
// std::filesystem) are caught at the boundary of the module that calls them
// and turned into Errors. After fork/clone, a child never builds an Error: it
// writes a fixed-size ChildFailure (see child_report.h) and _exits.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace specula {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // bad input from the caller (request, policy, path)
  kNotFound,            // a named thing (session, branch, file) does not exist
  kAlreadyExists,
  kPermissionDenied,
  kFailedPrecondition,  // state does not allow it now (branch not done, host file changed)
  kUnavailable,         // a kernel feature or tool is missing (see `specula doctor`)
  kResourceExhausted,   // limits: branches, memory, output, disk
  kDeadlineExceeded,    // timeouts
  kAborted,             // cancelled or discarded while running
  kDataLoss,            // on-disk state found corrupt
  kInternal,            // a bug or an unexpected system failure
};

std::string_view CodeName(Code code);
// The code that best describes a failed system call's errno.
Code CodeFromErrno(int err);

class Error {
 public:
  Error(Code code, std::string message, int sys_errno = 0)
      : code_(code), errno_(sys_errno), message_(std::move(message)) {}

  // "what: strerror(err)", code derived from err.
  static Error FromErrno(std::string_view what, int err = errno);

  Code code() const { return code_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }

  // Prepends context: Context("seal layer") turns "rename: EACCES" into
  // "seal layer: rename: EACCES".
  Error& Context(std::string_view context) &;
  Error&& Context(std::string_view context) &&;
  Error& WithHint(std::string hint) & { hint_ = std::move(hint); return *this; }
  Error&& WithHint(std::string hint) && { hint_ = std::move(hint); return std::move(*this); }

  // message, then "(hint: ...)" when there is one.
  std::string ToString() const;

 private:
  Code code_;
  int errno_;
  std::string message_;
  std::string hint_;
};

// Success or an Error. [[nodiscard]] so an ignored failure is a compile error
// (with -Werror).
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design
  static Status Ok() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }
  std::string ToString() const { return ok() ? "ok" : error_->ToString(); }
  // So SPECULA_TRY / SPECULA_TRY_CTX accept a Status as well as a Result.
  Status status() const& { return *this; }
  Status status() && { return std::move(*this); }
  // On a temporary, returns by value, so `SPECULA_TRY(F().Context("x"))`
  // never binds a reference to a dead temporary.
  Status& Context(std::string_view context) & {
    if (error_) error_->Context(context);
    return *this;
  }
  Status Context(std::string_view context) && {
    if (error_) error_->Context(context);
    return std::move(*this);
  }

 private:
  std::optional<Error> error_;
};

// A value or an Error (like std::expected, which C++20 lacks).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  Result(Status status) : v_(std::in_place_index<1>, std::move(status).error()) {}  // NOLINT: must not be ok

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }
  Status status() const& { return ok() ? Status() : Status(error()); }
  Status status() && { return ok() ? Status() : Status(std::move(*this).error()); }
  Result& Context(std::string_view context) & {
    if (!ok()) std::get<1>(v_).Context(context);
    return *this;
  }
  Result Context(std::string_view context) && {
    if (!ok()) std::get<1>(v_).Context(context);
    return std::move(*this);
  }

 private:
  std::variant<T, Error> v_;
};

}  // namespace specula

#define SPECULA_CONCAT_INNER(a, b) a##b
#define SPECULA_CONCAT(a, b) SPECULA_CONCAT_INNER(a, b)

// Returns the Status (or Result's error) of expr from the enclosing function
// if it failed.
#define SPECULA_TRY(expr)                                   \
  do {                                                      \
    auto&& specula_try_ = (expr);                           \
    /* the Error itself, not a Status: GCC 12 -O2 cannot see that a */ \
    /* Status converted into a Result holds an error (maybe-uninitialized) */ \
    if (!specula_try_.ok()) return std::move(specula_try_).error(); \
  } while (0)

// Same, with context prepended to the error.
#define SPECULA_TRY_CTX(expr, ctx)                          \
  do {                                                      \
    auto&& specula_try_ = (expr);                           \
    if (!specula_try_.ok()) {                               \
      return std::move(std::move(specula_try_).error().Context(ctx)); \
    }                                                       \
  } while (0)

// lhs = value of a Result-returning expr, or return its error.
#define SPECULA_ASSIGN_OR_RETURN(lhs, expr) \
  SPECULA_ASSIGN_OR_RETURN_IMPL(SPECULA_CONCAT(specula_r_, __LINE__), lhs, expr)
#define SPECULA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).error();       \
  lhs = std::move(tmp).value()
