#include "ebpf/libbpf_util.h"

#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <fstream>
#include <cstdarg>
#include <cstdio>

namespace specula::ebpf {

namespace {

int PrintToSpdlog(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
  if (n < 0) return n;
  std::string_view msg(buf);
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  if (level == LIBBPF_WARN) {
    spdlog::warn("libbpf: {}", msg);
  } else {
    spdlog::debug("libbpf: {}", msg);
  }
  return n;
}

bool IsTracefs(const char* path) {
  struct statfs fs {};
  return ::statfs(path, &fs) == 0 && fs.f_type == TRACEFS_MAGIC;
}

}  // namespace

void RouteLibbpfLogsToSpdlog() { libbpf_set_print(PrintToSpdlog); }

Result<std::string> TracefsEventsDir() {
  constexpr const char* kTracefs = "/sys/kernel/tracing";
  if (IsTracefs(kTracefs)) return std::string(kTracefs) + "/events";
  // debugfs auto-mounts tracefs below itself on older setups.
  if (IsTracefs("/sys/kernel/debug/tracing")) return std::string("/sys/kernel/debug/tracing/events");
  if (::mount("nodev", kTracefs, "tracefs", 0, nullptr) != 0) {
    return Error::FromErrno(std::string("mount tracefs on ") + kTracefs)
        .WithHint("mount -t tracefs nodev /sys/kernel/tracing");
  }
  spdlog::info("mounted tracefs on {} (needed to attach syscall tracepoints)", kTracefs);
  return std::string(kTracefs) + "/events";
}

MappingRanges BpfMapMappings() {
  MappingRanges out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("anon_inode:bpf-map") == std::string::npos) continue;
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &start, &end) == 2) out.emplace_back(start, end);
  }
  return out;
}

void DontForkNewBpfMappings(const MappingRanges& before) {
  for (const auto& range : BpfMapMappings()) {
    if (std::find(before.begin(), before.end(), range) != before.end()) continue;
    if (::madvise(reinterpret_cast<void*>(range.first), range.second - range.first, MADV_DONTFORK) != 0) {
      spdlog::debug("madvise(MADV_DONTFORK) on a BPF map mapping: {}", std::strerror(errno));
    }
  }
}

Error LibbpfError(const std::string& what, long err) {
  int e = static_cast<int>(err < 0 ? -err : err);
  if (e == 0) e = errno != 0 ? errno : EINVAL;
  return Error::FromErrno(what, e);
}

}  // namespace specula::ebpf
