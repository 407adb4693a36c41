#include "ebpf/egress_guard.h"

#include <arpa/inet.h>
#include <fcntl.h>

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>

#include "common/unique_fd.h"
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

specula_egress_key KeyFor(const EgressRule& r) {
  specula_egress_key k{};
  k.prefixlen = 16 + r.prefix_bits;
  k.data[0] = static_cast<uint8_t>(r.port >> 8);
  k.data[1] = static_cast<uint8_t>(r.port & 0xff);
  std::memcpy(&k.data[2], r.addr.data(), 16);
  return k;
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

struct EgressGuard::Impl {
  std::unique_ptr<egress_bpf, SkelDeleter> skel;  // destroyed last
  std::vector<LinkPtr> links;
  std::string cgroup_path;
};

EgressGuard::EgressGuard(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EgressGuard::EgressGuard(EgressGuard&&) noexcept = default;
EgressGuard& EgressGuard::operator=(EgressGuard&&) noexcept = default;
EgressGuard::~EgressGuard() { Detach(); }

Result<EgressGuard> EgressGuard::Attach(const std::string& cgroup2_path, const policy::Network& network) {
  const std::string what = "egress guard on " + cgroup2_path;
  // Validate everything before touching the kernel.
  std::vector<EgressRule> rules;
  if (network.mode == policy::NetworkMode::kAllowlist) {
    for (const policy::NetEndpoint& ep : network.allow) {
      SPECULA_ASSIGN_OR_RETURN(EgressRule r, ParseEgressRule(ep));
      rules.push_back(r);
    }
  }
  UniqueFd cg(::open(cgroup2_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg) return Error::FromErrno(what + ": open cgroup");

  RouteLibbpfLogsToSpdlog();
  const ProgramTypeSupport support = ProbeProgramTypes();
  if (!support.cgroup_sock_addr.loaded) {
    return Error(Code::kUnavailable, what + ": cgroup sock_addr programs refused: " + support.cgroup_sock_addr.detail,
                 support.cgroup_sock_addr.sys_errno);
  }

  auto impl = std::make_unique<Impl>();
  impl->cgroup_path = cgroup2_path;
  impl->skel.reset(egress_bpf__open());
  if (!impl->skel) return LibbpfError(what + ": open BPF object", -errno);
  egress_bpf* skel = impl->skel.get();
  skel->rodata->mode = ModeFor(network.mode);
  if (rules.size() > bpf_map__max_entries(skel->maps.allowlist)) {
    return Error(Code::kInvalidArgument, what + ": more than " +
                                             std::to_string(bpf_map__max_entries(skel->maps.allowlist)) +
                                             " allowlist entries");
  }
  if (int err = egress_bpf__load(skel); err != 0) return LibbpfError(what + ": load BPF programs", err);

  const uint8_t one = 1;
  for (const EgressRule& r : rules) {
    specula_egress_key key = KeyFor(r);
    if (int err = bpf_map__update_elem(skel->maps.allowlist, &key, sizeof(key), &one, sizeof(one), BPF_ANY);
        err != 0) {
      return LibbpfError(what + ": fill allowlist", err);
    }
  }
  for (struct bpf_program* prog : {skel->progs.egress_connect4, skel->progs.egress_connect6,
                                   skel->progs.egress_sendmsg4, skel->progs.egress_sendmsg6}) {
    struct bpf_link* link = bpf_program__attach_cgroup(prog, cg.get());
    if (link == nullptr) {
      return LibbpfError(what + ": attach " + bpf_program__section_name(prog), -errno);
    }
    impl->links.emplace_back(link);  // earlier links detach if a later one fails
  }
  spdlog::debug("{}: attached (mode {}, {} allowlist entries)", what, skel->rodata->mode, rules.size());
  return EgressGuard(std::move(impl));
}

void EgressGuard::Detach() {
  if (impl_) impl_->links.clear();
}

Result<EgressCounts> EgressGuard::Counts() const {
  if (!impl_) return Error(Code::kFailedPrecondition, "egress guard: moved from");
  struct bpf_map* map = impl_->skel->maps.counters;
  EgressCounts total;
  uint64_t key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map__get_next_key(map, prev, &next, sizeof(next)) == 0) {
    specula_egress_counts c{};
    if (bpf_map__lookup_elem(map, &next, sizeof(next), &c, sizeof(c), 0) == 0) {
      total.denied += c.denied;
      total.allowed += c.allowed;
      total.lossy += c.lossy;
    }
    key = next;
    prev = &key;
  }
  return total;
}

Result<uint64_t> EgressGuard::DeniedCount() const {
  SPECULA_ASSIGN_OR_RETURN(EgressCounts c, Counts());
  return c.denied;
}

}  // namespace specula::ebpf
