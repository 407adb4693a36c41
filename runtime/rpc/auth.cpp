#include "runtime/rpc/auth.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>

#include "common/unique_fd.h"

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

Result<std::vector<gid_t>> ParseStatusGroups(std::string_view text) {
  constexpr std::string_view kKey = "Groups:";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? text.npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (line.substr(0, kKey.size()) != kKey) continue;
    std::vector<gid_t> groups;
    std::string_view rest = line.substr(kKey.size());
    while (!rest.empty()) {
      size_t skip = rest.find_first_not_of(" \t");
      if (skip == std::string_view::npos) break;
      rest.remove_prefix(skip);
      size_t len = std::min(rest.find_first_of(" \t"), rest.size());
      gid_t gid = 0;
      auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + len, gid);
      if (ec != std::errc() || ptr != rest.data() + len) {
        return Error(Code::kInvalidArgument, "malformed Groups: line in /proc status");
      }
      groups.push_back(gid);
      rest.remove_prefix(len);
    }
    return groups;
  }
  return Error(Code::kInvalidArgument, "no Groups: line in /proc status");
}

Result<PeerCredentials> ReadPeerCredentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Error::FromErrno("getsockopt SO_PEERCRED");
  }
  PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};
  if (peer.uid == 0) return peer;  // root needs no group lookup
  // The peer may have exited or changed groups since connect(); both only
  // ever lose access here (a missing /proc entry denies).
  std::string path = "/proc/" + std::to_string(cred.pid) + "/status";
  UniqueFd status(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!status) return Error::FromErrno("open " + path);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(status.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read " + path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  SPECULA_ASSIGN_OR_RETURN(peer.groups, ParseStatusGroups(text));
  return peer;
}

bool PeerAllowed(const PeerCredentials& peer, std::optional<gid_t> allowed_group) {
  if (peer.uid == 0) return true;
  if (!allowed_group) return false;
  if (peer.gid == *allowed_group) return true;
  return std::find(peer.groups.begin(), peer.groups.end(), *allowed_group) != peer.groups.end();
}

}  // namespace specula::rpc
