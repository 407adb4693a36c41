#include "runtime/rpc/auth.h"

#include <grp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace specula::rpc {

std::optional<gid_t> LookupGroup(const std::string& name) {
  // getgrnam_r: the daemon is multi-threaded by the time a second lookup
  // could happen, and getgrnam's static buffer is not thread-safe.
  struct group grp {};
  struct group* found = nullptr;
  std::vector<char> buf(16384);
  if (::getgrnam_r(name.c_str(), &grp, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  return found->gr_gid;
}

Result<PeerCredentials> ReadPeerCredentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Error::FromErrno("getsockopt SO_PEERCRED");
  }
  PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};
  if (peer.uid == 0) return peer;  // root needs no group lookup
  // The kernel copies the groups it recorded at connect(); ERANGE tells the
  // size needed (a peer may have up to NGROUPS_MAX = 65536 groups).
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      peer.groups = std::move(groups);
      return peer;
    }
    if (errno != ERANGE) return Error::FromErrno("getsockopt SO_PEERGROUPS");
    groups.resize(glen / sizeof(gid_t) + 1);
  }
  return Error(Code::kInternal, "getsockopt SO_PEERGROUPS: group list kept growing");
}

bool PeerAllowed(const PeerCredentials& peer, std::optional<gid_t> allowed_group) {
  if (peer.uid == 0) return true;
  if (!allowed_group) return false;
  if (peer.gid == *allowed_group) return true;
  return std::find(peer.groups.begin(), peer.groups.end(), *allowed_group) != peer.groups.end();
}

Status CheckPeerAccess(const PeerCredentials& peer, std::optional<gid_t> allowed_group,
                       std::string_view group_name) {
  if (PeerAllowed(peer, allowed_group)) return {};
  std::string group(group_name);
  Error err(Code::kPermissionDenied, "uid " + std::to_string(peer.uid) + " may not use speculad");
  if (!allowed_group) {
    return err.WithHint("only root may connect: the group \"" + group +
                        "\" the daemon allows does not exist (create it, or start speculad with --group)");
  }
  return err.WithHint("run as root or join the \"" + group + "\" group (gid " + std::to_string(*allowed_group) +
                      ")");
}

}  // namespace specula::rpc
