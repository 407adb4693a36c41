#include "ebpf/effect_event.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace specula::ebpf {

std::string_view ToString(EffectOp op) {
  switch (op) {
    case EffectOp::kOpen: return "open";
    case EffectOp::kOpenRandom: return "open_random";
    case EffectOp::kUnlink: return "unlink";
    case EffectOp::kRmdir: return "rmdir";
    case EffectOp::kRename: return "rename";
    case EffectOp::kMkdir: return "mkdir";
    case EffectOp::kChmod: return "chmod";
    case EffectOp::kChown: return "chown";
    case EffectOp::kLink: return "link";
    case EffectOp::kSymlink: return "symlink";
    case EffectOp::kTruncate: return "truncate";
    case EffectOp::kExec: return "exec";
    case EffectOp::kConnect: return "connect";
    case EffectOp::kBind: return "bind";
    case EffectOp::kSend: return "send";
    case EffectOp::kFork: return "fork";
    case EffectOp::kExit: return "exit";
    case EffectOp::kGetrandom: return "getrandom";
    case EffectOp::kRecv: return "recv";
  }
  return "unknown";
}

std::string EffectAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    if (inet_ntop(AF_INET, ip.data(), buf, sizeof(buf)) == nullptr) return "?";
    return std::string(buf) + ":" + std::to_string(port);
  }
  if (family == AF_INET6) {
    if (inet_ntop(AF_INET6, ip.data(), buf, sizeof(buf)) == nullptr) return "?";
    return "[" + std::string(buf) + "]:" + std::to_string(port);
  }
  if (family == AF_UNIX) return "unix";
  return "";
}

bool EffectAddr::IsLoopback() const {
  if (family == AF_INET) return ip[0] == 127 || (ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] == 0);
  if (family == AF_INET6) {
    static constexpr uint8_t kZero[16] = {};
    if (std::memcmp(ip.data(), kZero, 15) == 0 && (ip[15] == 1 || ip[15] == 0)) return true;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip.data(), kMapped, 12) == 0) {
      return ip[12] == 127 || (ip[12] == 0 && ip[13] == 0 && ip[14] == 0 && ip[15] == 0);
    }
  }
  return false;
}

std::string EffectEvent::ToString() const {
  std::string s(ebpf::ToString(op));
  if (!path.empty()) s += " " + path;
  if (!path2.empty()) s += " -> " + path2;
  std::string a = addr.ToString();
  if (!a.empty()) s += " " + a;
  if (op == EffectOp::kFork) s += " child " + std::to_string(child_tgid());
  s += " = " + std::to_string(result);
  s += " (pid " + std::to_string(tgid) + " " + comm + ")";
  return s;
}

}  // namespace specula::ebpf
