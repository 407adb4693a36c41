// Internal to specula_ebpf: RAII owners for libbpf objects, libbpf's log
// routed to spdlog, and finding tracefs (syscall tracepoints attach through
// its events/<category>/<name>/id files).
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>
#include <string>

#include "common/error.h"

namespace specula::ebpf {

// Calls a libbpf destructor function (its result, if any, is not actionable).
template <auto Fn>
struct LibbpfDeleter {
  template <typename T>
  void operator()(T* p) const {
    if (p != nullptr) (void)Fn(p);
  }
};

using LinkPtr = std::unique_ptr<struct bpf_link, LibbpfDeleter<bpf_link__destroy>>;
using RingBufferPtr = std::unique_ptr<struct ring_buffer, LibbpfDeleter<ring_buffer__free>>;

// Sends libbpf's messages to spdlog (warnings as warn, the rest as debug)
// instead of stderr. Idempotent; libbpf keeps one process-wide printer.
void RouteLibbpfLogsToSpdlog();

// The tracefs "events" directory. If no tracefs is mounted, mounts one at
// /sys/kernel/tracing (where systemd would) and leaves it mounted: it is
// shared system state, like /sys/fs/bpf, not ours to take down.
Result<std::string> TracefsEventsDir();

// Address ranges of this process's mappings of BPF maps (/proc/self/maps).
using MappingRanges = std::vector<std::pair<uintptr_t, uintptr_t>>;
MappingRanges BpfMapMappings();
// Marks BPF map mappings that are not in `before` MADV_DONTFORK. Why: libbpf
// maps a ring buffer (twice its size, page by page) into the process, and
// without this every fork() copies those page tables: +0.5 ms per fork of an
// 8 MiB ring here, paid by every child the daemon (or a test) forks.
void DontForkNewBpfMappings(const MappingRanges& before);

// Error for a failed libbpf call that returned a negative errno (or set errno).
Error LibbpfError(const std::string& what, long err);

}  // namespace specula::ebpf
