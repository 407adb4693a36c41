#include "ebpf/egress_guard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>

#include "common/unique_fd.h"
#include "ebpf/cgroup2.h"
#include "ebpf/egress.h"
#include "ebpf/libbpf_util.h"
#include "ebpf/probe.h"
#include "egress.skel.h"

namespace specula::ebpf {

namespace {

struct SkelDeleter {
  void operator()(egress_bpf* s) const { egress_bpf__destroy(s); }
};

uint32_t ModeFor(policy::NetworkMode m) {
  switch (m) {
    case policy::NetworkMode::kNone:
    case policy::NetworkMode::kLoopback:
      return SPECULA_EGRESS_LOOPBACK_ONLY;
    case policy::NetworkMode::kAllowlist:
      return SPECULA_EGRESS_ALLOWLIST;
    case policy::NetworkMode::kLossyEgress:
      return SPECULA_EGRESS_LOSSY;
  }
  return SPECULA_EGRESS_LOOPBACK_ONLY;
}

// The trie key of one rule of the branch guarding cgroup `id` (layout in
// egress.h; the BPF side builds its lookup keys the same way).
specula_egress_key KeyFor(uint64_t id, const EgressRule& r) {
  specula_egress_key k{};
  k.prefixlen = SPECULA_EGRESS_KEY_FIXED_BITS + r.prefix_bits;
  std::memcpy(&k.data[0], &id, sizeof(id));
  k.data[8] = static_cast<uint8_t>(r.port >> 8);
  k.data[9] = static_cast<uint8_t>(r.port & 0xff);
  std::memcpy(&k.data[10], r.addr.data(), 16);
  return k;
}

bool SameKey(const specula_egress_key& a, const specula_egress_key& b) {
  return a.prefixlen == b.prefixlen && std::memcmp(a.data, b.data, sizeof(a.data)) == 0;
}

// cgroup2 ids of the directories above `dir`, nearest first, up to the
// cgroup2 mount (the first parent that is not cgroup2 ends the walk).
std::vector<uint64_t> AncestorIds(const std::string& dir) {
  std::vector<uint64_t> ids;
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "a/b/" -> "a/b"
  while (p.has_parent_path() && p.parent_path() != p) {
    p = p.parent_path();
    Result<uint64_t> id = Cgroup2Id(p.string());
    if (!id.ok()) break;
    ids.push_back(*id);
  }
  return ids;
}


}  // namespace

Result<EgressRule> ParseEgressRule(const policy::NetEndpoint& endpoint) {
  const std::string& cidr = endpoint.cidr;
  auto bad = [&](const std::string& why) {
    return Error(Code::kInvalidArgument, "egress allowlist entry '" + cidr + "': " + why);
  };
  std::string host = cidr;
  unsigned bits = 0;
  bool has_len = false;
  if (size_t slash = cidr.find('/'); slash != std::string::npos) {
    host = cidr.substr(0, slash);
    const std::string len = cidr.substr(slash + 1);
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);  // unsigned: no sign
    if (ec != std::errc() || p != len.data() + len.size() || len.empty()) return bad("bad prefix length");
    has_len = true;
  }
  EgressRule r;
  r.port = endpoint.port;
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    if (!has_len) bits = 32;
    if (bits > 32) return bad("IPv4 prefix length must be 0..32");
    r.addr[10] = 0xff;
    r.addr[11] = 0xff;
    std::memcpy(&r.addr[12], &v4, 4);
    r.prefix_bits = 96 + bits;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (!has_len) bits = 128;
    if (bits > 128) return bad("IPv6 prefix length must be 0..128");
    std::memcpy(r.addr.data(), &v6, 16);
    r.prefix_bits = bits;
  } else {
    return bad("not an IPv4 or IPv6 address");
  }
  for (uint32_t bit = r.prefix_bits; bit < 128; ++bit) {  // clear host bits
    r.addr[bit / 8] = static_cast<uint8_t>(r.addr[bit / 8] & ~(0x80u >> (bit % 8)));
  }
  return r;
}

struct EgressPrograms::Impl {
  std::unique_ptr<egress_bpf, SkelDeleter> skel;
  // Guarded cgroup id -> the ids of its cgroup2 ancestors. Attach refuses a
  // cgroup above or below a guarded one: a task there would run the shared
  // programs once per attachment, counting every call twice.
  std::mutex mu;
  std::map<uint64_t, std::vector<uint64_t>> guarded;

  Status Reserve(uint64_t id, std::vector<uint64_t> ancestors, const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (guarded.size() >= SPECULA_EGRESS_MAX_BRANCHES) {
      return Error(Code::kResourceExhausted,
                   what + ": " + std::to_string(SPECULA_EGRESS_MAX_BRANCHES) + " egress guards attached already");
    }
    if (guarded.count(id) != 0) return Error(Code::kAlreadyExists, what + ": cgroup already guarded");
    for (uint64_t a : ancestors) {
      if (guarded.count(a) != 0) {
        return Error(Code::kAlreadyExists, what + ": an ancestor cgroup (id " + std::to_string(a) + ") is guarded");
      }
    }
    for (const auto& [other, above] : guarded) {
      if (std::find(above.begin(), above.end(), id) != above.end()) {
        return Error(Code::kAlreadyExists,
                     what + ": a descendant cgroup (id " + std::to_string(other) + ") is guarded");
      }
    }
    guarded.emplace(id, std::move(ancestors));
    return Status::Ok();
  }
  void Release(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    guarded.erase(id);
  }
};

EgressPrograms::EgressPrograms(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EgressPrograms::~EgressPrograms() = default;

Result<std::shared_ptr<EgressPrograms>> EgressPrograms::Load() {
  RouteLibbpfLogsToSpdlog();
  const ProgramTypeSupport support = ProbeProgramTypes();
  if (!support.cgroup_sock_addr.loaded) {
    return Error(Code::kUnavailable, "egress guard: cgroup sock_addr programs refused: " +
                                         support.cgroup_sock_addr.detail,
                 support.cgroup_sock_addr.sys_errno);
  }
  auto impl = std::make_unique<Impl>();
  impl->skel.reset(egress_bpf__open());
  if (!impl->skel) return LibbpfError("egress guard: open BPF object", -errno);
  if (int err = egress_bpf__load(impl->skel.get()); err != 0) {
    return LibbpfError("egress guard: load BPF programs", err);
  }
  std::shared_ptr<EgressPrograms> programs(new EgressPrograms(std::move(impl)));
  SPECULA_TRY(programs->RefreshHostAddresses());
  return programs;
}

Status EgressPrograms::RefreshHostAddresses() {
  std::vector<specula_egress_host_key> keys;
  auto add = [&](const uint8_t addr[16], uint32_t prefix_bits) {
    specula_egress_host_key k{};
    k.prefixlen = prefix_bits;
    std::memcpy(k.addr, addr, 16);
    keys.push_back(k);
  };
  const uint8_t v4_link_local[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 169, 254, 0, 0};
  const uint8_t v6_link_local[16] = {0xfe, 0x80};
  add(v4_link_local, 96 + 16);
  add(v6_link_local, 10);
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return Error::FromErrno("egress guard: list the host's addresses");
  for (struct ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    uint8_t addr[16] = {};
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127) continue;  // loopback: the branch's own
      addr[10] = addr[11] = 0xff;
      std::memcpy(&addr[12], &sin->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) continue;
      std::memcpy(addr, &sin6->sin6_addr, 16);
    } else {
      continue;
    }
    add(addr, 128);
  }
  ::freeifaddrs(list);
  std::lock_guard<std::mutex> lock(impl_->mu);
  const uint8_t one = 1;
  for (const auto& k : keys) {
    if (int err = bpf_map__update_elem(impl_->skel->maps.host_denied, &k, sizeof(k), &one, sizeof(one), BPF_ANY);
        err != 0) {
      if (err == -ENOSPC || err == -E2BIG) {
        return Error(Code::kResourceExhausted, "egress guard: more than " +
                                                   std::to_string(SPECULA_EGRESS_MAX_HOST_ADDRS) +
                                                   " host addresses to deny", -err);
      }
      return LibbpfError("egress guard: deny the host's addresses", err);
    }
  }
  return Status::Ok();
}

Result<EgressPrograms::Usage> EgressPrograms::MapUsage() const {
  Usage u;
  for (auto [map, n] : {std::pair{impl_->skel->maps.configs, &u.guarded},
                        std::pair{impl_->skel->maps.allowlist, &u.rules}}) {
    const size_t key_size = bpf_map__key_size(map);
    std::vector<uint8_t> key(key_size), next(key_size);
    const void* prev = nullptr;
    while (bpf_map__get_next_key(map, prev, next.data(), key_size) == 0) {
      ++*n;
      key = next;
      prev = key.data();
    }
  }
  return u;
}

struct EgressGuard::Impl {
  std::shared_ptr<EgressPrograms> programs;  // outlives the links and entries below
  std::string what;
  uint64_t cgroup_id = 0;
  bool reserved = false;    // in programs' registry
  bool configured = false;  // configs entry written
  std::vector<specula_egress_key> keys;  // allowlist entries written
  std::vector<LinkPtr> links;
  std::optional<EgressCounts> final_counts;  // as of Detach

  // Also the cleanup of a half-done Attach. Links go first, so no hook runs
  // for this cgroup any more once its config is gone (one still running
  // finds no config and denies: fail closed).
  ~Impl() { Teardown(); }

  Result<EgressCounts> ReadCounts() const {
    specula_egress_config cfg{};
    if (int err = bpf_map__lookup_elem(programs->impl_->skel->maps.configs, &cgroup_id, sizeof(cgroup_id), &cfg,
                                       sizeof(cfg), 0);
        err != 0) {
      return LibbpfError(what + ": read counters", err);
    }
    return EgressCounts{cfg.counts.denied, cfg.counts.allowed, cfg.counts.lossy};
  }

  void Teardown() {
    links.clear();
    egress_bpf* skel = programs ? programs->impl_->skel.get() : nullptr;
    for (const specula_egress_key& k : keys) {
      int err = bpf_map__delete_elem(skel->maps.allowlist, &k, sizeof(k), 0);
      if (err != 0 && err != -ENOENT) spdlog::warn("{}: delete allowlist entry: {}", what, std::strerror(-err));
    }
    keys.clear();
    if (configured) {
      Result<EgressCounts> c = ReadCounts();
      if (c.ok()) final_counts = *c;
      int err = bpf_map__delete_elem(skel->maps.configs, &cgroup_id, sizeof(cgroup_id), 0);
      if (err != 0 && err != -ENOENT) spdlog::warn("{}: delete config: {}", what, std::strerror(-err));
      configured = false;
    }
    if (reserved) {
      programs->impl_->Release(cgroup_id);
      reserved = false;
    }
  }
};

EgressGuard::EgressGuard(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EgressGuard::EgressGuard(EgressGuard&&) noexcept = default;
EgressGuard& EgressGuard::operator=(EgressGuard&&) noexcept = default;
EgressGuard::~EgressGuard() = default;  // Impl's destructor detaches

Result<EgressGuard> EgressGuard::Attach(const std::string& cgroup2_path, const policy::Network& network) {
  // Validate before loading anything (the shared path validates again: cheap).
  if (network.mode == policy::NetworkMode::kAllowlist) {
    for (const policy::NetEndpoint& ep : network.allow) SPECULA_TRY(ParseEgressRule(ep));
  }
  UniqueFd cg(::open(cgroup2_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg) return Error::FromErrno("egress guard on " + cgroup2_path + ": open cgroup");
  SPECULA_ASSIGN_OR_RETURN(std::shared_ptr<EgressPrograms> programs,
                           EgressPrograms::Load().Context("egress guard on " + cgroup2_path));
  return Attach(std::move(programs), cgroup2_path, network);
}

Result<EgressGuard> EgressGuard::Attach(std::shared_ptr<EgressPrograms> programs, const std::string& cgroup2_path,
                                        const policy::Network& network) {
  const std::string what = "egress guard on " + cgroup2_path;
  if (!programs) return Error(Code::kInvalidArgument, what + ": no loaded programs");
  // Validate everything before touching the kernel.
  std::vector<EgressRule> rules;
  if (network.mode == policy::NetworkMode::kAllowlist) {
    for (const policy::NetEndpoint& ep : network.allow) {
      SPECULA_ASSIGN_OR_RETURN(EgressRule r, ParseEgressRule(ep));
      rules.push_back(r);
    }
  }
  if (rules.size() > SPECULA_EGRESS_MAX_BRANCH_RULES) {
    return Error(Code::kInvalidArgument,
                 what + ": more than " + std::to_string(SPECULA_EGRESS_MAX_BRANCH_RULES) + " allowlist entries");
  }
  UniqueFd cg(::open(cgroup2_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg) return Error::FromErrno(what + ": open cgroup");
  SPECULA_ASSIGN_OR_RETURN(uint64_t id, Cgroup2Id(cgroup2_path).Context(what));

  auto impl = std::make_unique<Impl>();  // from here on its destructor undoes what is done
  impl->programs = std::move(programs);
  impl->what = what;
  impl->cgroup_id = id;
  EgressPrograms::Impl& shared = *impl->programs->impl_;
  if (network.mode == policy::NetworkMode::kAllowlist || network.mode == policy::NetworkMode::kLossyEgress) {
    // The set from Load stays in force if this fails; an address the host
    // gained since would be reachable, so say so.
    if (Status st = impl->programs->RefreshHostAddresses(); !st.ok()) {
      spdlog::warn("{}: refresh the host's denied addresses: {}", what, st.ToString());
    }
  }
  SPECULA_TRY(shared.Reserve(id, AncestorIds(cgroup2_path), what));
  impl->reserved = true;

  egress_bpf* skel = shared.skel.get();
  specula_egress_config cfg{};
  cfg.mode = ModeFor(network.mode);
  if (int err = bpf_map__update_elem(skel->maps.configs, &id, sizeof(id), &cfg, sizeof(cfg), BPF_NOEXIST);
      err != 0) {
    // E2BIG: the map is full (Reserve bounds the count, so only if entries leaked).
    if (err == -E2BIG) return Error(Code::kResourceExhausted, what + ": egress config map full", E2BIG);
    return LibbpfError(what + ": write config", err);
  }
  impl->configured = true;

  for (const EgressRule& r : rules) {
    specula_egress_key key = KeyFor(id, r);
    if (std::any_of(impl->keys.begin(), impl->keys.end(), [&](const auto& k) { return SameKey(k, key); })) continue;
    const uint8_t bits = static_cast<uint8_t>(r.prefix_bits);  // the BPF side tells an exact host entry by it
    if (int err = bpf_map__update_elem(skel->maps.allowlist, &key, sizeof(key), &bits, sizeof(bits), BPF_NOEXIST);
        err != 0) {
      if (err == -ENOSPC || err == -E2BIG) {
        return Error(Code::kResourceExhausted,
                     what + ": shared egress allowlist full (" + std::to_string(SPECULA_EGRESS_MAX_RULES) +
                         " entries over all branches)",
                     -err);
      }
      return LibbpfError(what + ": fill allowlist", err);
    }
    impl->keys.push_back(key);
  }
  for (struct bpf_program* prog : {skel->progs.egress_connect4, skel->progs.egress_connect6,
                                   skel->progs.egress_sendmsg4, skel->progs.egress_sendmsg6}) {
    struct bpf_link* link = bpf_program__attach_cgroup(prog, cg.get());
    if (link == nullptr) return LibbpfError(what + ": attach " + bpf_program__section_name(prog), -errno);
    impl->links.emplace_back(link);
  }
  spdlog::debug("{}: attached (cgroup id {}, mode {}, {} allowlist entries)", what, id, cfg.mode, impl->keys.size());
  return EgressGuard(std::move(impl));
}

void EgressGuard::Detach() {
  if (impl_) impl_->Teardown();
}

Result<EgressCounts> EgressGuard::Counts() const {
  if (!impl_) return Error(Code::kFailedPrecondition, "egress guard: moved from");
  if (impl_->final_counts) return *impl_->final_counts;
  if (!impl_->configured) return Error(Code::kFailedPrecondition, impl_->what + ": counters lost at detach");
  return impl_->ReadCounts();
}

Result<uint64_t> EgressGuard::DeniedCount() const {
  SPECULA_ASSIGN_OR_RETURN(EgressCounts c, Counts());
  return c.denied;
}

}  // namespace specula::ebpf
