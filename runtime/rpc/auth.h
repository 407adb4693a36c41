// Who may talk to speculad: root, and members of one group (`specula` by
// default). The peer's identity comes from the kernel (SO_PEERCRED), never
// from anything the client says; its supplementary groups are read from
// /proc/<pid>/status because SO_PEERCRED carries only the primary gid.
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

// Parses the "Groups:" line of a /proc/<pid>/status text. Pure. Fails
// (invalid_argument) when the line is missing or holds a non-number.
Result<std::vector<gid_t>> ParseStatusGroups(std::string_view status_text);

// SO_PEERCRED of a connected Unix socket, plus the peer's supplementary groups.
Result<PeerCredentials> ReadPeerCredentials(int fd);

// Root always; otherwise the allowed group must be the peer's primary gid or
// one of its supplementary groups.
bool PeerAllowed(const PeerCredentials& peer, std::optional<gid_t> allowed_group);

}  // namespace specula::rpc
