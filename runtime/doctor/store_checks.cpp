// The store's filesystem and disk limits (docs/checkpoints.md, "Disk
// limits"): what the state dir's store is, and whether policy disk limits
// (resources.disk) are enforced there. Where no btrfs store is mounted the
// machine is probed for real: a small sparse btrfs image is made, mounted,
// quotas are turned on, and a 1 MiB qgroup limit must stop a 2 MiB write
// with EDQUOT, through the same ioctls the store uses (runtime/store/btrfs.h).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/spawn.h"
#include "common/unique_fd.h"
#include "runtime/doctor/checks.h"
#include "runtime/store/btrfs.h"

namespace specula::doctor {
namespace {

constexpr const char* kName = "store.fs";
constexpr const char* kInstallBtrfs = "install btrfs-progs (scripts/setup.sh does)";
constexpr uint64_t kProbeImage = 128ULL << 20;  // mkfs.btrfs needs about 110 MiB

// A scratch directory whose mount (if any) is detached and which is removed
// on destruction, also when a step fails half-way.
class ProbeDir {
 public:
  static Result<ProbeDir> Create(const std::string& parent) {
    std::string tmpl = parent + "/specula-doctor-store-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return Error::FromErrno("mkdtemp " + tmpl);
    return ProbeDir(std::move(tmpl));
  }
  ProbeDir(ProbeDir&& o) noexcept : path_(std::exchange(o.path_, {})), mounted_(o.mounted_) {}
  ProbeDir& operator=(ProbeDir&&) = delete;
  ProbeDir(const ProbeDir&) = delete;
  ~ProbeDir() {
    if (path_.empty()) return;
    if (mounted_) ::umount2(mnt().c_str(), MNT_DETACH);  // the loop device clears itself
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string img() const { return path_ + "/img"; }
  std::string mnt() const { return path_ + "/mnt"; }
  void set_mounted() { mounted_ = true; }

 private:
  explicit ProbeDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
  bool mounted_ = false;
};

struct ProbeResult {
  bool enforced = false;
  store::btrfs::QuotaMode mode = store::btrfs::QuotaMode::kOff;
  std::string detail;  // what the probe saw
  std::string action;  // if not enforced
};

Status RunTool(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  std::string tool = argv[0];
  auto r = Spawn({.argv = std::move(argv), .timeout = timeout});
  if (!r.ok()) return std::move(r).error();
  if (!r->success()) return Error(Code::kUnavailable, tool + ": " + ErrorLines(r->err + r->out, 2));
  return Status::Ok();
}

// Makes, mounts and uses a btrfs with quotas as a new store would.
ProbeResult ProbeDiskLimits(const DoctorOptions& o) {
  using store::btrfs::QuotaMode;
  ProbeResult p;
  auto timeout = o.criu_timeout;  // tools, not kernel probes: the longer limit
  auto made = ProbeDir::Create(o.scratch_dir);
  if (!made.ok()) {
    p.detail = made.error().message();
    p.action = "make " + o.scratch_dir + " writable";
    return p;
  }
  ProbeDir& dir = *made;
  if (Status st = RunTool({"mkfs.btrfs", "--version"}, timeout); !st.ok()) {
    p.detail = "mkfs.btrfs not found (" + st.error().message() + "): a new store is ext4, without disk limits";
    p.action = kInstallBtrfs;
    return p;
  }
  {
    UniqueFd img(::open(dir.img().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!img || ::ftruncate(img.get(), static_cast<off_t>(kProbeImage)) != 0) {
      p.detail = Error::FromErrno("create " + dir.img()).message();
      p.action = "make " + o.scratch_dir + " writable";
      return p;
    }
  }
  if (Status st = RunTool({"mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single", dir.img()}, timeout);
      !st.ok()) {
    p.detail = "mkfs.btrfs failed: " + st.error().message();
    p.action = "run `mkfs.btrfs` on a 128 MiB file by hand; " + std::string(kInstallBtrfs);
    return p;
  }
  ::mkdir(dir.mnt().c_str(), 0700);
  if (Status st = RunTool({"mount", "-o", "loop,nodev,nosuid,noatime,discard=async", dir.img(), dir.mnt()}, timeout);
      !st.ok()) {
    p.detail = "the kernel cannot mount btrfs (" + st.error().message() + "): a new store is ext4, without disk limits";
    p.action = "run as root; load btrfs (modprobe btrfs) or use a kernel with CONFIG_BTRFS_FS";
    return p;
  }
  dir.set_mounted();
  auto fs = store::btrfs::Filesystem::Open(dir.mnt());
  auto mode = fs.ok() ? fs->EnableQuotas() : Result<QuotaMode>(fs.error());
  if (!mode.ok()) {
    p.detail = "btrfs quotas cannot be turned on: " + mode.error().message();
    p.action = "use a kernel whose btrfs has qgroups (any mainline btrfs does)";
    return p;
  }
  UniqueFd top(::open(dir.mnt().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto vol = store::btrfs::Subvolume::Create(top.get(), "v", dir.mnt() + "/v");
  Status limited = vol.ok() ? vol->SetLimit(1ULL << 20, *mode) : vol.status();
  if (!limited.ok()) {
    p.detail = "subvolume with a qgroup limit: " + limited.error().message();
    p.action = "see the kernel log (dmesg) for btrfs errors";
    return p;
  }
  UniqueFd f(::open((dir.mnt() + "/v/f").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  static char chunk[64 << 10];
  int err = 0;
  for (size_t written = 0; f && written < (2U << 20) && err == 0; written += sizeof(chunk)) {
    if (::write(f.get(), chunk, sizeof(chunk)) < 0) err = errno;
  }
  if (err == 0 && f && ::fsync(f.get()) != 0) err = errno;
  if (err != EDQUOT) {
    p.detail = std::string("a 1 MiB qgroup limit did not stop a 2 MiB write (") +
               (err == 0 ? "it succeeded" : std::strerror(err)) + ")";
    p.action = "report this kernel: disk limits are not enforced on it";
    return p;
  }
  p.enforced = true;
  p.mode = *mode;
  p.detail = *mode == QuotaMode::kSimple
                 ? "btrfs with simple quotas: a 1 MiB limit stopped a 2 MiB write with EDQUOT"
                 : "btrfs with full qgroups (simple quotas need Linux >= 6.7): a 1 MiB limit stopped a 2 MiB "
                   "write with EDQUOT";
  return p;
}

// The state dir's store as it is now: its image's filesystem and, when
// mounted, the kernel's quota mode for it.
struct StoreState {
  std::string image;  // "", "btrfs", "ext4" or "unknown"
  bool mounted = false;
  store::btrfs::QuotaMode mode = store::btrfs::QuotaMode::kOff;
};

StoreState InspectStore(const std::string& state_dir) {
  StoreState s;
  std::string img = state_dir + "/layers.img";
  UniqueFd fd(::open(img.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return s;
  char magic[8] = {};
  unsigned char ext[2] = {};
  if (::pread(fd.get(), magic, sizeof(magic), 0x10040) == 8 && std::memcmp(magic, "_BHRfS_M", 8) == 0) {
    s.image = "btrfs";
  } else if (::pread(fd.get(), ext, 2, 0x438) == 2 && ext[0] == 0x53 && ext[1] == 0xEF) {
    s.image = "ext4";
  } else {
    s.image = "unknown";
  }
  std::string mnt = state_dir + "/fs";
  struct stat top {}, m {};
  s.mounted = ::stat(state_dir.c_str(), &top) == 0 && ::stat(mnt.c_str(), &m) == 0 && top.st_dev != m.st_dev;
  if (s.mounted && s.image == "btrfs") {
    auto fs = store::btrfs::Filesystem::Open(mnt);
    if (fs.ok()) s.mode = fs->quota_mode();
  }
  return s;
}

DoctorCheck StoreCheck(const DoctorOptions& o) {
  using store::btrfs::QuotaMode;
  const std::string& dir = o.state_dir;
  StoreState s = InspectStore(dir);
  const std::string convert =
      "destroy its sessions (specula session rm) and restart speculad: an empty store is converted to btrfs; "
      "or start speculad with a new --state-dir";
  if (s.image == "ext4") {
    return Degraded(kName, "store " + dir + " is ext4 (made by an older specula): disk limits (resources.disk) "
                           "are not enforced",
                    convert);
  }
  if (s.image == "unknown") {
    return Degraded(kName, dir + "/layers.img holds neither btrfs nor ext4: speculad will refuse it",
                    "move it away (speculad makes a new one) or use another --state-dir");
  }
  if (s.image == "btrfs" && s.mounted && s.mode != QuotaMode::kOff) {
    return Ok(kName, "store " + dir + ": btrfs, " + std::string(store::btrfs::QuotaModeName(s.mode)) +
                         " quotas: disk limits enforced",
              /*required=*/false);
  }
  ProbeResult p = ProbeDiskLimits(o);
  if (s.image == "btrfs" && s.mounted) {
    return Degraded(kName, "store " + dir + ": btrfs with quotas off: disk limits are not enforced; " + p.detail,
                    p.enforced ? "restart speculad: it turns quotas on when it opens the store" : p.action);
  }
  std::string what = s.image == "btrfs" ? "store " + dir + ": btrfs, not mounted now" : "no store at " + dir + " yet";
  if (!p.enforced) {
    return Degraded(kName, what + "; " + p.detail, p.action + "; specula runs without disk limits");
  }
  return Ok(kName, what + "; " + p.detail, /*required=*/false);
}

}  // namespace

std::vector<DoctorCheck> StoreChecks(const DoctorOptions& o) {
  auto start = std::chrono::steady_clock::now();
  DoctorCheck c = StoreCheck(o);
  c.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return {c};
}

}  // namespace specula::doctor
