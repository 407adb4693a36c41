#include "runtime/cli/output.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <new>
#include <stdexcept>

#include "runtime/rpc/protocol.h"

namespace specula::cli {

std::string Table::Render() const {
  std::vector<size_t> width(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  };
  measure(headers_);
  for (const auto& r : rows_) measure(r);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < headers_.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < headers_.size()) line += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(headers_);
  for (const auto& r : rows_) emit(r);
  return out;
}

int ExitCodeFor(const Error& error) {
  return error.code() == Code::kUnavailable ? kExitUnavailable : kExitError;
}

int ReportError(const Error& error, bool json, std::ostream& out, std::ostream& err) {
  if (json) {
    Json e{{"code", CodeName(error.code())}, {"message", error.message()}};
    if (!error.hint().empty()) e["hint"] = error.hint();
    out << rpc::DumpJson(Json{{"error", e}}) << "\n";
  } else {
    err << "specula: " << error.message() << "\n";
    if (!error.hint().empty()) err << "hint: " << error.hint() << "\n";
  }
  return ExitCodeFor(error);
}

Error ErrorFromException(const std::exception& e) {
  if (const auto* fs = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    int err = fs->code().value();
    return Error(CodeFromErrno(err), fs->what(), err);
  }
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return Error(Code::kResourceExhausted, "out of memory");
  if (dynamic_cast<const nlohmann::json::exception*>(&e) != nullptr ||
      dynamic_cast<const std::invalid_argument*>(&e) != nullptr ||
      dynamic_cast<const std::out_of_range*>(&e) != nullptr) {
    return Error(Code::kInvalidArgument, e.what());
  }
  return Error(Code::kInternal, std::string("unexpected exception: ") + e.what());
}

std::string FormatDuration(int64_t ms) {
  char buf[32];
  if (ms < 1000) std::snprintf(buf, sizeof(buf), "%lldms", static_cast<long long>(ms));
  else if (ms < 60000) std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ms) / 1000.0);
  else std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(ms / 60000),
                     static_cast<long long>((ms / 1000) % 60));
  return buf;
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < std::size(units)) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
  return buf;
}

std::string OneLine(std::string_view text, size_t width) {
  std::string s(text.substr(0, text.find('\n')));
  bool cut = s.size() < text.size();
  if (s.size() > width) {
    s.resize(width > 3 ? width - 3 : 0);
    cut = true;
  }
  if (cut) s += "...";
  return s;
}

}  // namespace specula::cli
