#include "sandbox/device_filter.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common/unique_fd.h"

namespace specula::sandbox {

std::string DeviceRule::V1Line() const {
  return std::string(1, type) + " " + std::to_string(major) + ":" + (minor < 0 ? "*" : std::to_string(minor)) +
         " rw";
}

const std::vector<DeviceRule>& SandboxDeviceRules() {
  // Must match SandboxDevices() and the devpts /dev/pts (sandbox_plan.cpp):
  // mem majors 1 (null 3, zero 5, full 7, random 8, urandom 9), tty 5:0,
  // ptmx 5:2, and the Unix98 pty slaves (majors 136-143).
  static const std::vector<DeviceRule> kRules = [] {
    std::vector<DeviceRule> r = {{'c', 1, 3}, {'c', 1, 5}, {'c', 1, 7}, {'c', 1, 8},
                                 {'c', 1, 9}, {'c', 5, 0}, {'c', 5, 2}};
    for (int major = 136; major <= 143; ++major) r.push_back({'c', major, -1});
    return r;
  }();
  return kRules;
}

namespace {

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// r1 = struct bpf_cgroup_dev_ctx* {access_type = access << 16 | type, major, minor}.
// r2 = access, r3 = type, r4 = major, r5 = minor; each rule is a block that
// jumps past itself on a mismatch and returns 1 on a match; the end returns 0.
std::vector<bpf_insn> Program() {
  std::vector<bpf_insn> p = {
      Insn(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0),        // r2 = ctx->access_type
      Insn(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0),      // r3 = r2
      Insn(BPF_ALU64 | BPF_AND | BPF_K, 3, 0, 0, 0xffff), // r3 = type
      Insn(BPF_ALU64 | BPF_RSH | BPF_K, 2, 0, 0, 16),     // r2 = access
      Insn(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0),        // r4 = major
      Insn(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0),        // r5 = minor
  };
  for (const auto& r : SandboxDeviceRules()) {
    std::vector<bpf_insn> b;
    int32_t type = r.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
    b.push_back(Insn(BPF_JMP | BPF_JNE | BPF_K, 3, 0, 0, type));
    b.push_back(Insn(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 0, r.major));
    if (r.minor >= 0) b.push_back(Insn(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, r.minor));
    // Any access besides read and write (mknod) is not this rule's.
    b.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_X, 6, 2, 0, 0));
    b.push_back(Insn(BPF_ALU64 | BPF_AND | BPF_K, 6, 0, 0, ~(BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE)));
    b.push_back(Insn(BPF_JMP | BPF_JNE | BPF_K, 6, 0, 0, 0));
    b.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1));
    b.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    for (size_t i = 0; i < b.size(); ++i) {
      if (b[i].code == (BPF_JMP | BPF_JNE | BPF_K)) b[i].off = static_cast<int16_t>(b.size() - i - 1);
    }
    p.insert(p.end(), b.begin(), b.end());
  }
  p.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0));
  p.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  return p;
}

// The loaded program's fd, or -errno.
int LoadProgram() {
  std::vector<bpf_insn> insns = Program();
  static const char kLicense[] = "Apache-2.0";
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = reinterpret_cast<uint64_t>(insns.data());
  attr.insn_cnt = static_cast<uint32_t>(insns.size());
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  int fd = static_cast<int>(::syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
  return fd >= 0 ? fd : -errno;
}

bool Unsupported(int err) { return err == ENOSYS || err == EINVAL || err == EOPNOTSUPP; }

}  // namespace

Result<std::shared_ptr<const DeviceFilterProgram>> DeviceFilterProgram::Load() {
  int loaded = LoadProgram();
  if (loaded < 0 && Unsupported(-loaded)) {
    return std::shared_ptr<const DeviceFilterProgram>(new DeviceFilterProgram(UniqueFd()));
  }
  if (loaded < 0) {
    errno = -loaded;
    return Error::FromErrno("load the device filter (BPF_CGROUP_DEVICE)");
  }
  return std::shared_ptr<const DeviceFilterProgram>(new DeviceFilterProgram(UniqueFd(loaded)));
}

Result<bool> DeviceFilterProgram::Attach(const std::string& cgroup_dir) const {
  if (!prog_) return false;
  UniqueFd cg(::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg) return Error::FromErrno("open " + cgroup_dir);
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.target_fd = static_cast<uint32_t>(cg.get());
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_.get());
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (::syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof attr) != 0) {
    if (Unsupported(errno)) return false;
    return Error::FromErrno("attach the device filter to " + cgroup_dir);
  }
  return true;
}

}  // namespace specula::sandbox
