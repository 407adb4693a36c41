#include "ebpf/effect_tracer.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "common/unique_fd.h"
#include "ebpf/effects.h"
#include "ebpf/libbpf_util.h"
#include "ebpf/probe.h"
#include "effects.skel.h"

namespace specula::ebpf {

// The record layout is shared with the BPF side through effects.h; a size
// change there must be deliberate.
static_assert(sizeof(specula_effect_event) == 2160, "effects.h record layout changed");
static_assert(static_cast<uint32_t>(EffectOp::kRecv) == SPECULA_OP_RECV, "EffectOp out of sync");
static_assert(static_cast<uint32_t>(EffectOp::kFork) == SPECULA_OP_FORK, "EffectOp out of sync");

namespace {

struct SkelDeleter {
  void operator()(effects_bpf* s) const { effects_bpf__destroy(s); }
};

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

EffectEvent Decode(const specula_effect_event& r) {
  EffectEvent e;
  e.op = static_cast<EffectOp>(r.op);
  e.path.assign(r.path, ::strnlen(r.path, sizeof(r.path)));
  e.path2.assign(r.path2, ::strnlen(r.path2, sizeof(r.path2)));
  e.pid = static_cast<pid_t>(r.pid);
  e.tgid = static_cast<pid_t>(r.tgid);
  e.result = r.result;
  e.time_ns = r.time_ns;
  e.cgroup_id = r.cgroup_id;
  e.traced_cgroup_id = r.traced_cgroup_id;
  e.addr.family = r.addr_family;
  e.addr.port = r.addr_port;
  std::memcpy(e.addr.ip.data(), r.addr, sizeof(r.addr));
  e.flags = r.flags;
  e.mode = r.mode;
  e.fd = r.fd;
  e.aux = r.aux;
  e.path_truncated = (r.eflags & SPECULA_EFLAG_PATH_TRUNCATED) != 0;
  e.comm.assign(r.comm, ::strnlen(r.comm, sizeof(r.comm)));
  return e;
}

}  // namespace

struct EffectTracer::Impl {
  // Declaration order is destruction order reversed: the ring buffer and the
  // links go before the skeleton that owns the maps and programs.
  std::unique_ptr<effects_bpf, SkelDeleter> skel;
  std::vector<LinkPtr> links;
  RingBufferPtr rb;
  std::vector<std::string> unavailable;
  bool process_accounting = false;

  std::mutex consume_mu;  // libbpf's ring_buffer has a single consumer
  std::mutex cb_mu;
  std::unordered_map<uint64_t, Callback> callbacks;

  UniqueFd wake;   // eventfd: tells the consumer to stop
  UniqueFd epoll;  // ring buffer map fd + wake
  std::thread consumer;
  std::atomic<bool> stop{false};
  int poll_ms = 50;
  SyscallHooks hooks = SyscallHooks::kAuto;
};

EffectTracer::EffectTracer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EffectTracer::~EffectTracer() {
  Stop();
  // Each tracepoint detach waits for an RCU grace period (~70-500 ms here
  // under load): detach from a few threads at once so the waits overlap.
  constexpr size_t kDetachThreads = 16;
  std::vector<LinkPtr>& links = impl_->links;
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kDetachThreads && t < links.size(); ++t) {
    threads.emplace_back([&links, t] {
      for (size_t i = t; i < links.size(); i += kDetachThreads) links[i].reset();
    });
  }
  for (std::thread& th : threads) th.join();
}

Result<std::unique_ptr<EffectTracer>> EffectTracer::Load(const EffectTracerOptions& options) {
  if (options.path_max == 0 || options.path_max > SPECULA_EFFECT_PATH_MAX) {
    return Error(Code::kInvalidArgument,
                 "effect tracer: path_max must be 1.." + std::to_string(SPECULA_EFFECT_PATH_MAX));
  }
  const long page = ::sysconf(_SC_PAGESIZE);
  if (options.ring_bytes < static_cast<uint32_t>(page) || (options.ring_bytes & (options.ring_bytes - 1)) != 0) {
    return Error(Code::kInvalidArgument, "effect tracer: ring_bytes must be a power of two >= the page size");
  }
  RouteLibbpfLogsToSpdlog();
  const ProgramTypeSupport support = ProbeProgramTypes();

  auto impl = std::make_unique<Impl>();
  impl->poll_ms = static_cast<int>(std::clamp<int64_t>(options.poll_interval.count(), 1, 60000));
  impl->skel.reset(effects_bpf__open());
  if (!impl->skel) return LibbpfError("effect tracer: open BPF object", -errno);
  effects_bpf* skel = impl->skel.get();
  skel->rodata->path_max = options.path_max;
  skel->rodata->trace_descendants = options.trace_descendants;
  skel->rodata->wakeup_bytes = options.wakeup_bytes;
  if (int err = bpf_map__set_max_entries(skel->maps.events, options.ring_bytes); err != 0) {
    return LibbpfError("effect tracer: ring buffer size", err);
  }

  // Choose the syscall hook set: per-syscall tracepoints when the kernel
  // takes tracepoint programs and tracefs is there to attach them, else the
  // raw sys_enter/sys_exit pair. Then switch off what this kernel cannot
  // run, before loading: one refused program would fail the whole object.
  Result<std::string> events_dir = Error(Code::kUnavailable, "tracepoint programs refused: " +
                                                                   support.tracepoint.detail);
  if (support.tracepoint.loaded && options.hooks != SyscallHooks::kRawTracepoints) {
    events_dir = TracefsEventsDir();
  }
  SyscallHooks hooks = options.hooks;
  if (hooks == SyscallHooks::kAuto) {
    hooks = events_dir.ok() || !support.raw_tp.loaded ? SyscallHooks::kTracepoints : SyscallHooks::kRawTracepoints;
  }
  impl->hooks = hooks;
  struct bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel->obj) {
    const std::string sec = bpf_program__section_name(prog);
    const bool raw_syscall = sec == "raw_tp/sys_enter" || sec == "raw_tp/sys_exit";
    std::string why;
    if (StartsWith(sec, "tracepoint/")) {
      if (hooks != SyscallHooks::kTracepoints) {
        (void)bpf_program__set_autoload(prog, false);  // the other hook set: not a loss
        continue;
      }
      const std::string tp = sec.substr(std::strlen("tracepoint/"));
      if (!events_dir.ok()) {
        why = events_dir.error().ToString();
      } else if (::access((*events_dir + "/" + tp + "/id").c_str(), F_OK) != 0) {
        why = "no such tracepoint";
      }
    } else if (raw_syscall && hooks != SyscallHooks::kRawTracepoints) {
      (void)bpf_program__set_autoload(prog, false);
      continue;
    } else if (StartsWith(sec, "raw_tp/") && !support.raw_tp.loaded) {
      why = "raw_tp programs refused: " + support.raw_tp.detail;
    }
    if (!why.empty()) {
      (void)bpf_program__set_autoload(prog, false);
      impl->unavailable.push_back(sec + ": " + why);
    }
  }
  if (int err = effects_bpf__load(skel); err != 0) {
    return LibbpfError("effect tracer: load BPF programs", err)
        .WithHint("the verifier log is logged at debug level; see `specula doctor`");
  }

  bool fork_attached = false, exit_attached = false;
  size_t syscall_links = 0;
  bpf_object__for_each_program(prog, skel->obj) {
    if (!bpf_program__autoload(prog)) continue;
    struct bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr) {
      const int err = errno;
      impl->unavailable.push_back(std::string(bpf_program__section_name(prog)) + ": attach: " +
                                  std::strerror(err));
      continue;
    }
    impl->links.emplace_back(link);
    const std::string sec = bpf_program__section_name(prog);
    if (StartsWith(sec, "tracepoint/") || sec == "raw_tp/sys_enter") ++syscall_links;
    if (prog == skel->progs.on_fork) fork_attached = true;
    if (prog == skel->progs.on_exit) exit_attached = true;
  }
  impl->process_accounting = fork_attached && exit_attached;
  if (syscall_links == 0 && options.hooks == SyscallHooks::kAuto && hooks == SyscallHooks::kTracepoints &&
      support.raw_tp.loaded) {
    // E.g. tracefs is there but perf refuses the attach: try the raw set.
    spdlog::warn("effect tracer: no syscall tracepoint attached; falling back to raw sys_enter/sys_exit");
    EffectTracerOptions raw = options;
    raw.hooks = SyscallHooks::kRawTracepoints;
    return Load(raw);
  }
  for (const std::string& u : impl->unavailable) spdlog::warn("effect tracer: {}", u);
  if (impl->links.empty()) {
    return Error(Code::kUnavailable, "effect tracer: no BPF program could be attached")
        .WithHint("see `specula doctor` for the eBPF program types this kernel accepts");
  }

  std::unique_ptr<EffectTracer> tracer(new EffectTracer(std::move(impl)));
  Impl& im = *tracer->impl_;
  const int rb_fd = bpf_map__fd(skel->maps.events);
  const MappingRanges before = BpfMapMappings();
  im.rb.reset(ring_buffer__new(rb_fd, &EffectTracer::OnSample, tracer.get(), nullptr));
  if (!im.rb) return LibbpfError("effect tracer: ring buffer", -errno);
  DontForkNewBpfMappings(before);
  spdlog::debug("effect tracer: {} programs attached, {} unavailable", im.links.size(), im.unavailable.size());
  return tracer;
}

int EffectTracer::OnSample(void* ctx, void* data, size_t size) {
  auto* self = static_cast<EffectTracer*>(ctx);
  specula_effect_event raw;
  if (size < sizeof(raw)) return 0;  // not ours: a layout mismatch would be caught by the static_assert
  std::memcpy(&raw, data, sizeof(raw));
  if (raw.op == SPECULA_OP_NONE || raw.op >= SPECULA_OP_MAX_) return 0;
  self->Dispatch(Decode(raw));
  return 0;
}

void EffectTracer::Dispatch(const EffectEvent& e) {
  std::lock_guard lock(impl_->cb_mu);
  auto it = impl_->callbacks.find(e.traced_cgroup_id);
  if (it == impl_->callbacks.end()) {
    unmatched_.fetch_add(1);
    return;
  }
  it->second(e);
}

Status EffectTracer::AddCgroup(uint64_t cgroup_id, Callback cb) {
  if (cgroup_id == 0) return Error(Code::kInvalidArgument, "effect tracer: cgroup id 0");
  if (!cb) return Error(Code::kInvalidArgument, "effect tracer: empty callback");
  std::lock_guard lock(impl_->cb_mu);
  if (impl_->callbacks.count(cgroup_id) != 0) {
    return Error(Code::kAlreadyExists, "effect tracer: cgroup " + std::to_string(cgroup_id) + " already traced");
  }
  specula_traced_cgroup zero{};
  if (int err = bpf_map__update_elem(impl_->skel->maps.traced_cgroups, &cgroup_id, sizeof(cgroup_id), &zero,
                                     sizeof(zero), BPF_NOEXIST);
      err != 0) {
    return LibbpfError("effect tracer: add cgroup " + std::to_string(cgroup_id), err);
  }
  impl_->callbacks.emplace(cgroup_id, std::move(cb));
  return Status::Ok();
}

Status EffectTracer::RemoveCgroup(uint64_t cgroup_id) {
  {
    std::lock_guard lock(impl_->cb_mu);
    if (impl_->callbacks.count(cgroup_id) == 0) {
      return Error(Code::kNotFound, "effect tracer: cgroup " + std::to_string(cgroup_id) + " not traced");
    }
  }
  Status st = Status::Ok();
  if (int err = bpf_map__delete_elem(impl_->skel->maps.traced_cgroups, &cgroup_id, sizeof(cgroup_id), 0);
      err != 0) {
    st = LibbpfError("effect tracer: remove cgroup " + std::to_string(cgroup_id), err);
  }
  // Deliver what the kernel already emitted for it before forgetting the callback.
  Result<int> drained = Drain();
  std::lock_guard lock(impl_->cb_mu);
  impl_->callbacks.erase(cgroup_id);
  if (!st.ok()) return st;
  return drained.status();
}

Result<int> EffectTracer::Drain() {
  std::lock_guard lock(impl_->consume_mu);
  int n = ring_buffer__consume(impl_->rb.get());
  if (n < 0) return LibbpfError("effect tracer: consume ring buffer", n);
  return n;
}

Status EffectTracer::Start() {
  Impl& im = *impl_;
  if (im.consumer.joinable()) return Error(Code::kFailedPrecondition, "effect tracer: already started");
  im.wake.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!im.wake) return Error::FromErrno("effect tracer: eventfd");
  im.epoll.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!im.epoll) return Error::FromErrno("effect tracer: epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = bpf_map__fd(im.skel->maps.events);
  if (::epoll_ctl(im.epoll.get(), EPOLL_CTL_ADD, ev.data.fd, &ev) != 0) {
    return Error::FromErrno("effect tracer: epoll add ring buffer");
  }
  ev.data.fd = im.wake.get();
  if (::epoll_ctl(im.epoll.get(), EPOLL_CTL_ADD, im.wake.get(), &ev) != 0) {
    return Error::FromErrno("effect tracer: epoll add eventfd");
  }
  im.stop = false;
  im.consumer = std::thread([this] { ConsumerLoop(); });
  return Status::Ok();
}

void EffectTracer::ConsumerLoop() {
  Impl& im = *impl_;
  while (!im.stop.load()) {
    epoll_event evs[2];
    int n = ::epoll_wait(im.epoll.get(), evs, 2, im.poll_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("effect tracer: epoll_wait: {}", std::strerror(errno));
      return;
    }
    if (im.stop.load()) break;
    Result<int> r = Drain();
    if (!r.ok()) spdlog::warn("{}", r.error().ToString());
  }
}

void EffectTracer::Stop() {
  Impl& im = *impl_;
  if (!im.consumer.joinable()) return;
  im.stop = true;
  uint64_t one = 1;
  if (::write(im.wake.get(), &one, sizeof(one)) < 0) {
    spdlog::warn("effect tracer: wake consumer: {}", std::strerror(errno));  // it still wakes on its timer
  }
  im.consumer.join();
}

Result<EffectTracer::CgroupStats> EffectTracer::Stats(uint64_t cgroup_id) const {
  specula_traced_cgroup v{};
  if (int err = bpf_map__lookup_elem(impl_->skel->maps.traced_cgroups, &cgroup_id, sizeof(cgroup_id), &v,
                                     sizeof(v), 0);
      err != 0) {
    return LibbpfError("effect tracer: stats of cgroup " + std::to_string(cgroup_id), err);
  }
  return CgroupStats{v.emitted, v.dropped};
}

bool EffectTracer::Complete(uint64_t cgroup_id) const {
  if (!impl_->process_accounting) return false;
  Result<CgroupStats> s = Stats(cgroup_id);
  return s.ok() && s->dropped == 0;
}

bool EffectTracer::ProcessAccountingAvailable() const { return impl_->process_accounting; }

std::vector<std::string> EffectTracer::unavailable_programs() const { return impl_->unavailable; }

size_t EffectTracer::attached_programs() const { return impl_->links.size(); }

SyscallHooks EffectTracer::syscall_hooks() const { return impl_->hooks; }

// ---- EffectJournal ----

EffectJournal::Callback EffectJournal::Sink() {
  return [this](const EffectEvent& e) { Append(e); };
}

void EffectJournal::Append(const EffectEvent& e) {
  std::lock_guard lock(mu_);
  events_.push_back(e);
}

std::vector<EffectEvent> EffectJournal::Snapshot() const {
  std::lock_guard lock(mu_);
  return events_;
}

std::vector<EffectEvent> EffectJournal::Take() {
  std::lock_guard lock(mu_);
  return std::exchange(events_, {});
}

size_t EffectJournal::size() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

}  // namespace specula::ebpf
