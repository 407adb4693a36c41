#include "ebpf/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "common/unique_fd.h"

namespace specula::ebpf {
namespace {

// `r0 = 0; exit`: valid for every probed type (0 is inside each type's
// allowed return range, including cgroup sock_addr's [0, 1] and lsm's
// [-MAX_ERRNO, 0]).
constexpr std::array<bpf_insn, 2> kReturnZero = {{
    {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0},
    {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
}};

// Types that take no expected_attach_type are loaded with 0 there.
constexpr auto kNoAttachType = static_cast<bpf_attach_type>(0);

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

// The last non-empty line of the verifier log: the reason it gave.
std::string LastLogLine(const char* log) {
  std::string s(log);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  auto nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

ProgramTypeProbe TryLoad(const char* what, bpf_prog_type type, bpf_attach_type attach,
                         __u32 attach_btf_id) {
  ProgramTypeProbe p;
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  opts.expected_attach_type = attach;
  opts.attach_btf_id = attach_btf_id;
  // GPL: tracing and lsm programs that attach by BTF id require it.
  UniqueFd fd(bpf_prog_load(type, "specula_probe", "GPL", kReturnZero.data(), kReturnZero.size(),
                            &opts));
  if (fd.valid()) {
    p.loaded = true;
    p.detail = std::string(what) + " loaded";
    return p;
  }
  p.sys_errno = errno;
  p.detail = std::string(what) + ": load refused: " + std::strerror(p.sys_errno);
  // EPERM/ENOTSUPP carry no verifier log; for a verifier rejection, load once
  // more with a log so the report can quote the verifier's reason.
  if (p.sys_errno == EINVAL || p.sys_errno == EACCES) {
    std::array<char, 4096> log{};
    opts.log_buf = log.data();
    opts.log_size = log.size();
    opts.log_level = 1;
    UniqueFd again(bpf_prog_load(type, "specula_probe", "GPL", kReturnZero.data(),
                                 kReturnZero.size(), &opts));
    std::string line = LastLogLine(log.data());
    if (!line.empty()) p.detail += " (verifier: " + line + ")";
  }
  return p;
}

// Loads a type that attaches to a BTF-described kernel function or typedef.
ProgramTypeProbe TryLoadBtf(const btf* vmlinux, const char* what, bpf_prog_type type,
                            bpf_attach_type attach, const char* btf_name, __u32 btf_kind) {
  if (vmlinux == nullptr) {
    ProgramTypeProbe p;
    p.sys_errno = ENOENT;
    p.detail = std::string(what) + ": no vmlinux BTF to find " + btf_name + " in";
    return p;
  }
  __s32 id = btf__find_by_name_kind(vmlinux, btf_name, btf_kind);
  if (id < 0) {
    ProgramTypeProbe p;
    p.sys_errno = -id;
    p.detail = std::string(what) + ": " + btf_name + " not in vmlinux BTF";
    return p;
  }
  return TryLoad(what, type, attach, static_cast<__u32>(id));
}

}  // namespace

ProgramTypeSupport ProbeProgramTypes() {
  ProgramTypeSupport s;
  BtfPtr vmlinux(btf__load_vmlinux_btf());
  s.vmlinux_btf = vmlinux != nullptr;

  s.tracepoint = TryLoad("tracepoint", BPF_PROG_TYPE_TRACEPOINT, kNoAttachType, 0);
  s.raw_tp = TryLoad("raw_tp", BPF_PROG_TYPE_RAW_TRACEPOINT, kNoAttachType, 0);
  s.cgroup_sock_addr = TryLoad("cgroup/connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
                               BPF_CGROUP_INET4_CONNECT, 0);
  // libbpf's own naming: tp_btf/X attaches to typedef btf_trace_X, lsm/X to
  // function bpf_lsm_X, fentry/X to function X.
  s.tp_btf = TryLoadBtf(vmlinux.get(), "tp_btf/sys_enter", BPF_PROG_TYPE_TRACING,
                        BPF_TRACE_RAW_TP, "btf_trace_sys_enter", BTF_KIND_TYPEDEF);
  s.fentry = TryLoadBtf(vmlinux.get(), "fentry/do_unlinkat", BPF_PROG_TYPE_TRACING,
                        BPF_TRACE_FENTRY, "do_unlinkat", BTF_KIND_FUNC);
  s.lsm = TryLoadBtf(vmlinux.get(), "lsm/file_open", BPF_PROG_TYPE_LSM, BPF_LSM_MAC,
                     "bpf_lsm_file_open", BTF_KIND_FUNC);
  return s;
}

}  // namespace specula::ebpf
