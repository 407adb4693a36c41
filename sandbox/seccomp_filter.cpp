#include "sandbox/seccomp_filter.h"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "common/unique_fd.h"
#include "policies/containment.h"

namespace specula::sandbox {
namespace {

// Owns a libseccomp filter context.
class SeccompContext {
 public:
  explicit SeccompContext(scmp_filter_ctx ctx) : ctx_(ctx) {}
  SeccompContext(const SeccompContext&) = delete;
  SeccompContext& operator=(const SeccompContext&) = delete;
  SeccompContext(SeccompContext&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)) {}
  SeccompContext& operator=(SeccompContext&& o) noexcept {
    if (this != &o) {
      if (ctx_) seccomp_release(ctx_);
      ctx_ = std::exchange(o.ctx_, nullptr);
    }
    return *this;
  }
  ~SeccompContext() {
    if (ctx_) seccomp_release(ctx_);
  }
  scmp_filter_ctx get() const { return ctx_; }

 private:
  scmp_filter_ctx ctx_;
};

Status Check(int rc, const std::string& what) {
  if (rc < 0) return Error::FromErrno("seccomp: " + what, -rc);
  return Status::Ok();
}

int Resolve(const std::string& name) { return seccomp_syscall_resolve_name(name.c_str()); }

// personality(2): the execution-domain flags that switch off the process's
// own hardening are refused (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE,
// MMAP_PAGE_ZERO, the address-limit and compat flags: bits 18-30), and so
// is any value with bit 31 but not the query 0xffffffff; the kernel reads
// the low 32 bits only, so the compares ignore the rest. What stays:
// PER_LINUX, PER_LINUX32, UNAME26 and the other low personalities, and
// the query (gdb, setarch). libseccomp takes one compare per argument and
// rule, so each is a masked compare of its own: "bit b set, bit 31 clear",
// and "bit 31 set, bit k clear" for every lower bit k.
Status AddPersonality(scmp_filter_ctx ctx, uint32_t deny) {
  constexpr uint64_t kBit31 = 0x80000000ULL;
  for (int b = 18; b <= 30; ++b) {
    const uint64_t bit = 1ULL << b;
    SPECULA_TRY(Check(seccomp_rule_add(ctx, deny, SCMP_SYS(personality), 1,
                                       SCMP_A0(SCMP_CMP_MASKED_EQ, bit | kBit31, bit)),
                      "personality"));
  }
  for (int k = 0; k <= 30; ++k) {
    SPECULA_TRY(Check(seccomp_rule_add(ctx, deny, SCMP_SYS(personality), 1,
                                       SCMP_A0(SCMP_CMP_MASKED_EQ, kBit31 | (1ULL << k), kBit31)),
                      "personality"));
  }
  return Status::Ok();
}

Status AddBaseline(scmp_filter_ctx ctx, const std::set<std::string>& overridden) {
  const uint32_t deny = SCMP_ACT_ERRNO(kBaselineErrno);
  for (const auto& name : BaselineDeniedSyscalls()) {
    if (overridden.count(name) != 0) continue;  // policy defers or kills it instead
    int nr = Resolve(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    SPECULA_TRY(Check(seccomp_rule_add(ctx, deny, nr, 0), "deny " + name));
  }
  SPECULA_TRY(Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3"));
  // New user namespaces: a root-in-userns escape hatch for many kernel bugs.
  for (int nr : {SCMP_SYS(unshare), SCMP_SYS(clone)}) {
    SPECULA_TRY(Check(seccomp_rule_add(ctx, deny, nr, 1,
                                       SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)),
                      "clone/unshare NEWUSER"));
  }
  // Device nodes: the mode register says what is being created.
  for (unsigned type : {S_IFCHR, S_IFBLK}) {
    SPECULA_TRY(Check(seccomp_rule_add(ctx, deny, SCMP_SYS(mknod), 1,
                                       SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, type)),
                      "mknod"));
    SPECULA_TRY(Check(seccomp_rule_add(ctx, deny, SCMP_SYS(mknodat), 1,
                                       SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, type)),
                      "mknodat"));
  }
  SPECULA_TRY(AddPersonality(ctx, deny));
  // Terminal input injection; the request is a 32-bit int, upper bits are junk.
  for (unsigned long req : {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    SPECULA_TRY(Check(seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, req)),
                      "ioctl"));
  }
  return Status::Ok();
}

// setuid/setgid bits in a mode register: chmod family and creations (each
// bit is its own rule: a masked compare tests for all of its mask's bits).
Status AddPrivilegeBitRules(scmp_filter_ctx ctx) {
  const uint32_t deny = SCMP_ACT_ERRNO(kBaselineErrno);
  struct ModeArg {
    int nr;
    unsigned arg;
    const char* name;
  };
  std::vector<ModeArg> calls = {
      {SCMP_SYS(chmod), 1, "chmod"},   {SCMP_SYS(fchmod), 1, "fchmod"}, {SCMP_SYS(fchmodat), 2, "fchmodat"},
      {SCMP_SYS(open), 2, "open"},     {SCMP_SYS(openat), 3, "openat"}, {SCMP_SYS(creat), 1, "creat"},
      {SCMP_SYS(mknod), 1, "mknod"},   {SCMP_SYS(mknodat), 2, "mknodat"},
  };
#if defined(__x86_64__)
  // fchmodat2 (Linux 6.6) is newer than the libseccomp this builds with may
  // know by name; an unknown number left open would bypass the chmod rules.
  calls.push_back({452, 2, "fchmodat2"});
#endif
  for (const auto& c : calls) {
    for (unsigned bit : {S_ISUID, S_ISGID}) {
      scmp_arg_cmp cmp{c.arg, SCMP_CMP_MASKED_EQ, bit, bit};
      SPECULA_TRY(Check(seccomp_rule_add_array(ctx, deny, c.nr, 1, &cmp), std::string("privilege bits of ") + c.name));
    }
  }
  return Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0), "openat2");
}

}  // namespace

// The lists live in policies/containment.h, so `policy check` warns about
// exactly what this filter ignores.
const std::vector<std::string>& BaselineDeniedSyscalls() { return policy::BaselineDeniedSyscalls(); }

const std::vector<std::string>& BaselineConditionalSyscalls() { return policy::BaselineConditionalSyscalls(); }

Result<SeccompProgram> BuildSeccompProgram(const std::vector<policy::SyscallRule>& rules,
                                           bool deny_privilege_bits) {
  std::set<std::string> baseline(BaselineDeniedSyscalls().begin(), BaselineDeniedSyscalls().end());
  baseline.insert(BaselineConditionalSyscalls().begin(), BaselineConditionalSyscalls().end());
  std::set<std::string> seen;
  for (const auto& r : rules) {
    if (Resolve(r.name) == __NR_SCMP_ERROR) {
      return Error(Code::kInvalidArgument, "seccomp rule: unknown syscall '" + r.name + "'");
    }
    if (!seen.insert(r.name).second) {
      return Error(Code::kInvalidArgument, "seccomp rule: syscall '" + r.name + "' listed twice");
    }
    if (r.action == policy::SyscallAction::kDeny && (r.errno_value <= 0 || r.errno_value > 4095)) {
      return Error(Code::kInvalidArgument,
                   "seccomp rule " + r.name + ": errno " + std::to_string(r.errno_value) +
                       " out of range 1..4095");
    }
  }

  // The baseline cannot be loosened. An unconditionally denied call may be
  // made stricter by the policy (kill) or deferred (it still never runs in an
  // unpromoted branch); arguments-based baseline rules are never overridden.
  std::set<std::string> unconditional(BaselineDeniedSyscalls().begin(), BaselineDeniedSyscalls().end());
  std::set<std::string> overridden;
  std::vector<const policy::SyscallRule*> applied;
  for (const auto& r : rules) {
    bool strict = r.action == policy::SyscallAction::kKill || r.action == policy::SyscallAction::kDefer;
    if (baseline.count(r.name) == 0) {
      if (r.action != policy::SyscallAction::kAllow) applied.push_back(&r);
    } else if (unconditional.count(r.name) != 0 && strict) {
      overridden.insert(r.name);
      applied.push_back(&r);
    } else if (r.action == policy::SyscallAction::kDeny) {
      spdlog::debug("seccomp: policy rule for '{}' covered by the baseline", r.name);
    } else {
      spdlog::warn("seccomp: policy rule '{} {}' ignored: the baseline restricts it", r.name,
                   policy::ToString(r.action));
    }
  }

  scmp_filter_ctx raw = seccomp_init(SCMP_ACT_ALLOW);
  if (raw == nullptr) return Error(Code::kInternal, "seccomp_init failed");
  SeccompContext ctx(raw);
  // x32 and i386 entry points would bypass every rule keyed on x86_64 numbers.
  SPECULA_TRY(Check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS)),
                    "bad-arch action"));
  SPECULA_TRY(AddBaseline(ctx.get(), overridden));
  if (deny_privilege_bits) SPECULA_TRY(AddPrivilegeBitRules(ctx.get()));

  SeccompProgram prog;
  for (const auto* r : applied) {
    uint32_t action = SCMP_ACT_ALLOW;
    switch (r->action) {
      case policy::SyscallAction::kAllow: continue;
      case policy::SyscallAction::kDeny: action = SCMP_ACT_ERRNO(r->errno_value); break;
      case policy::SyscallAction::kKill: action = SCMP_ACT_KILL_PROCESS; break;
      case policy::SyscallAction::kDefer:
        action = SCMP_ACT_NOTIFY;
        prog.has_defer = true;
        break;
    }
    SPECULA_TRY(Check(seccomp_rule_add(ctx.get(), action, Resolve(r->name), 0), "rule " + r->name));
  }

  UniqueFd mem(::memfd_create("specula-seccomp", MFD_CLOEXEC));
  if (!mem) return Error::FromErrno("seccomp: memfd_create");
  SPECULA_TRY(Check(seccomp_export_bpf(ctx.get(), mem.get()), "export bpf"));
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    return Error(Code::kInternal, "seccomp: exported program has odd size " + std::to_string(size));
  }
  prog.filter.resize(size / sizeof(sock_filter));
  if (::pread(mem.get(), prog.filter.data(), size, 0) != size) {
    return Error::FromErrno("seccomp: read exported program");
  }
  return prog;
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (name == nullptr) return "?" + std::to_string(nr);
  std::string s(name);
  ::free(name);
  return s;
}

}  // namespace specula::sandbox
