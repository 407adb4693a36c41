#include "runtime/api/validate.h"

#include <string>

namespace specula::api {
namespace {

constexpr size_t kMaxCommandBytes = 1u << 20;

}  // namespace

Status ValidateId(std::string_view what, std::string_view id) {
  bool bad = id.empty() || id.size() > 256 || id == "." || id == "..";
  for (char c : id) {
    if (c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) bad = true;
  }
  if (bad) {
    return Error(Code::kInvalidArgument, std::string(what) + " \"" + std::string(id.substr(0, 64)) +
                                             "\" is not a valid id")
        .WithHint("ids are printed by `specula session ls`, `specula branches` and `specula log`");
  }
  return Status::Ok();
}

Status ValidateCommand(std::string_view command) {
  if (command.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Error(Code::kInvalidArgument, "command is blank");
  }
  if (command.size() > kMaxCommandBytes) {
    return Error(Code::kInvalidArgument, "command is longer than " + std::to_string(kMaxCommandBytes) + " bytes");
  }
  if (command.find('\0') != std::string_view::npos) {
    return Error(Code::kInvalidArgument, "command contains a NUL byte");
  }
  return Status::Ok();
}

Status ValidateAbsolutePath(std::string_view what, std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return Error(Code::kInvalidArgument, std::string(what) + " must be an absolute path, got \"" +
                                             std::string(path) + "\"");
  }
  if (path.find('\0') != std::string_view::npos || path.size() > 4096) {
    return Error(Code::kInvalidArgument, std::string(what) + " is not a valid path");
  }
  return Status::Ok();
}

}  // namespace specula::api
