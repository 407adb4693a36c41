// Who may talk to speculad: root, and members of one group (`specula` by
// default, `speculad --group`). The peer's identity comes from the kernel,
// never from anything the client says: SO_PEERCRED for uid and primary gid,
// SO_PEERGROUPS (Linux 4.13) for the supplementary groups. Both are the
// credentials the kernel recorded at connect(), so nothing here depends on
// the peer's pid still naming the same process (reading /proc/<pid>/status
// after SO_PEERCRED did: a peer that exits and whose pid is reused would be
// judged by another process's groups).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace specula::rpc {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// The gid of the group allowed besides root, resolved once at start-up;
// nullopt when the group does not exist (then only root is allowed).
std::optional<gid_t> LookupGroup(const std::string& name);

// SO_PEERCRED of a connected Unix socket, plus its SO_PEERGROUPS.
Result<PeerCredentials> ReadPeerCredentials(int fd);

// Root always; otherwise the allowed group must be the peer's primary gid or
// one of its supplementary groups.
bool PeerAllowed(const PeerCredentials& peer, std::optional<gid_t> allowed_group);

// The access decision with the reply a refused peer gets: ok, or
// permission_denied naming the uid, with a hint that names `group_name`, the
// group the daemon was configured with (and says when it does not exist).
Status CheckPeerAccess(const PeerCredentials& peer, std::optional<gid_t> allowed_group,
                       std::string_view group_name);

}  // namespace specula::rpc
