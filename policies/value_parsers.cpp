#include "policies/value_parsers.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string>
#include <vector>

namespace specula::policy {

std::string QuoteValue(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';  // control characters would garble a terminal
    } else {
      out += c;
    }
  }
  return out + "\"";
}

namespace {

std::string Quote(std::string_view s) { return QuoteValue(s); }

template <typename T>
Parsed<T> Fail(std::string why) {
  return Parsed<T>{std::variant<T, std::string>(std::in_place_index<1>, std::move(why))};
}
template <typename T>
Parsed<T> Ok(T v) {
  return Parsed<T>{std::variant<T, std::string>(std::in_place_index<0>, std::move(v))};
}

// Splits "12.5MiB" into the number (integer part, fraction digits) and the
// rest. Returns false if it does not start with a digit.
struct Number {
  uint64_t whole = 0;
  std::string fraction;  // digits after the point
  bool overflow = false;
};
bool TakeNumber(std::string_view& s, Number& n) {
  size_t i = 0;
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (__builtin_mul_overflow(n.whole, 10u, &n.whole) ||
        __builtin_add_overflow(n.whole, static_cast<uint64_t>(s[i] - '0'), &n.whole)) {
      n.overflow = true;
    }
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start) return false;  // "1." is not a number
    n.fraction = std::string(s.substr(start, i - start));
  }
  s.remove_prefix(i);
  return true;
}

// n * mult, with the fraction applied; false on overflow.
bool Scale(const Number& n, uint64_t mult, uint64_t& out) {
  if (n.overflow) return false;
  uint64_t v;
  if (__builtin_mul_overflow(n.whole, mult, &v)) return false;
  // The fraction contributes less than `mult`, so long double precision is
  // enough and the sum cannot overflow unless v is already near the limit.
  long double frac = 0;
  long double place = 0.1L;
  for (char c : n.fraction) {
    frac += (c - '0') * place;
    place /= 10;
  }
  uint64_t extra = static_cast<uint64_t>(frac * static_cast<long double>(mult));
  if (__builtin_add_overflow(v, extra, &v)) return false;
  out = v;
  return true;
}

struct Unit {
  const char* name;
  uint64_t mult;
};
constexpr std::array<Unit, 14> kSizeUnits = {{
    {"B", 1},
    {"K", 1ULL << 10}, {"KiB", 1ULL << 10}, {"kB", 1000}, {"KB", 1000},
    {"M", 1ULL << 20}, {"MiB", 1ULL << 20}, {"MB", 1000ULL * 1000},
    {"G", 1ULL << 30}, {"GiB", 1ULL << 30}, {"GB", 1000ULL * 1000 * 1000},
    {"T", 1ULL << 40}, {"TiB", 1ULL << 40}, {"TB", 1000ULL * 1000 * 1000 * 1000},
}};

constexpr std::array<const char*, 41> kCapabilities = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

}  // namespace

Parsed<uint64_t> ParseSize(std::string_view text) {
  std::string_view s = text;
  Number n;
  const std::string expected = "expected a size like \"512MiB\" or \"2GiB\", got " + Quote(text);
  if (!TakeNumber(s, n)) return Fail<uint64_t>(expected);
  if (!s.empty() && s[0] == ' ') s.remove_prefix(1);
  uint64_t mult = 0;
  if (s.empty()) {
    mult = 1;
  } else {
    for (const Unit& u : kSizeUnits) {
      if (s == u.name) mult = u.mult;
    }
  }
  if (mult == 0) {
    return Fail<uint64_t>(expected + " (units: B, K/KiB, M/MiB, G/GiB, T/TiB, kB, MB, GB, TB)");
  }
  uint64_t v;
  if (!Scale(n, mult, v)) return Fail<uint64_t>("size " + Quote(text) + " is too large");
  return Ok(v);
}

Parsed<uint64_t> ParseDurationMs(std::string_view text) {
  std::string_view s = text;
  const std::string expected =
      "expected a duration like \"30s\", \"500ms\" or \"1m30s\", got " + Quote(text);
  if (s.empty()) return Fail<uint64_t>(expected);
  uint64_t total = 0;
  while (!s.empty()) {
    Number n;
    if (!TakeNumber(s, n)) return Fail<uint64_t>(expected);
    uint64_t mult = 0;
    // Longest unit first so "ms" is not read as "m" followed by "s".
    if (s.substr(0, 2) == "ms") {
      mult = 1;
      s.remove_prefix(2);
    } else if (!s.empty() && s[0] == 's') {
      mult = 1000;
      s.remove_prefix(1);
    } else if (!s.empty() && s[0] == 'm') {
      mult = 60 * 1000;
      s.remove_prefix(1);
    } else if (!s.empty() && s[0] == 'h') {
      mult = 3600 * 1000;
      s.remove_prefix(1);
    } else {
      return Fail<uint64_t>(expected + " (units: ms, s, m, h)");
    }
    uint64_t part;
    if (!Scale(n, mult, part) || __builtin_add_overflow(total, part, &total)) {
      return Fail<uint64_t>("duration " + Quote(text) + " is too long");
    }
  }
  return Ok(total);
}

Parsed<int> ParseErrno(std::string_view text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(),
                                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (text.size() > 4) return Fail<int>("errno " + std::string(text) + " is out of range 1..4095");
    int v = std::stoi(std::string(text));
    if (v < 1 || v > 4095) return Fail<int>("errno " + std::string(text) + " is out of range 1..4095");
    return Ok(v);
  }
  // The C library knows every name this kernel's errno values have.
  for (int e = 1; e < 200; ++e) {
    const char* name = strerrorname_np(e);
    if (name != nullptr && text == name) return Ok(e);
  }
  return Fail<int>("expected an errno name like \"EPERM\" or a number, got " + Quote(text));
}

Parsed<std::string> ParseCapability(std::string_view text) {
  std::string up;
  for (char c : text) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up.rfind("CAP_", 0) != 0) up = "CAP_" + up;
  for (const char* cap : kCapabilities) {
    if (up == cap) return Ok(up);
  }
  return Fail<std::string>("expected a capability name like \"CAP_CHOWN\", got " + Quote(text));
}

Parsed<NetEndpoint> ParseEndpoint(std::string_view text) {
  const std::string expected =
      "expected CIDR[:port] like \"10.0.0.0/8:443\" or \"[fd00::/8]:53\", got " + Quote(text);
  std::string_view addr_part = text;
  std::string_view port_part;
  bool has_port = false;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return Fail<NetEndpoint>(expected);
    addr_part = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return Fail<NetEndpoint>(expected);
      port_part = rest.substr(1);
      has_port = true;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');  // IPv4 with a port
    addr_part = text.substr(0, colon);
    port_part = text.substr(colon + 1);
    has_port = true;
  }
  NetEndpoint ep;
  if (has_port) {
    if (port_part.empty() || port_part.size() > 5 ||
        !std::all_of(port_part.begin(), port_part.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      return Fail<NetEndpoint>(expected);
    }
    int port = std::stoi(std::string(port_part));
    if (port < 1 || port > 65535) {
      return Fail<NetEndpoint>("port " + std::string(port_part) + " is out of range 1..65535");
    }
    ep.port = static_cast<uint16_t>(port);
  }
  std::string addr(addr_part);
  int prefix = -1;
  if (size_t slash = addr.find('/'); slash != std::string::npos) {
    std::string p = addr.substr(slash + 1);
    addr.resize(slash);
    if (p.empty() || p.size() > 3 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      return Fail<NetEndpoint>(expected);
    }
    prefix = std::stoi(p);
  }
  unsigned char bytes[16] = {};
  int family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(family, addr.c_str(), bytes) != 1) return Fail<NetEndpoint>(expected);
  const int bits = family == AF_INET ? 32 : 128;
  if (prefix < 0) prefix = bits;
  if (prefix > bits) {
    return Fail<NetEndpoint>("prefix length /" + std::to_string(prefix) + " is longer than " +
                             std::to_string(bits) + " bits in " + Quote(text));
  }
  // Host bits set usually means a typo ("10.0.0.1/8"): refuse rather than guess.
  bool host_bits = false;
  for (int b = prefix; b < bits; ++b) {
    if (bytes[b / 8] & (0x80 >> (b % 8))) host_bits = true;
  }
  if (host_bits) {
    for (int b = prefix; b < bits; ++b) bytes[b / 8] &= static_cast<unsigned char>(~(0x80 >> (b % 8)));
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family, bytes, buf, sizeof(buf));
    return Fail<NetEndpoint>(Quote(text) + " has host bits set (did you mean \"" + buf + "/" +
                             std::to_string(prefix) + "\"?)");
  }
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family, bytes, buf, sizeof(buf));
  ep.cidr = std::string(buf) + "/" + std::to_string(prefix);
  return Ok(ep);
}

Parsed<std::string> NormalisePolicyPath(std::string_view text, bool allow_glob) {
  if (text.empty() || text[0] != '/') {
    return Fail<std::string>("expected an absolute path, got " + Quote(text));
  }
  if (text.find('\0') != std::string_view::npos) {
    return Fail<std::string>("path contains a NUL byte");
  }
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == '/') ++i;
    size_t start = i;
    while (i < text.size() && text[i] != '/') ++i;
    if (i > start) parts.push_back(text.substr(start, i - start));
  }
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (parts[k] == "." || parts[k] == "..") {
      return Fail<std::string>("path " + Quote(text) + " must not contain \".\" or \"..\" components");
    }
    bool glob = parts[k].find_first_of("*?[") != std::string_view::npos;
    if (glob && (!allow_glob || k + 1 != parts.size())) {
      return Fail<std::string>(allow_glob ? "path " + Quote(text) +
                                                ": glob characters are allowed in the last component only"
                                          : "path " + Quote(text) +
                                                ": glob characters are allowed in lossy paths only");
    }
    out += '/';
    out += parts[k];
  }
  if (out.empty()) out = "/";
  return Ok(out);
}

bool PathIsWithin(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  if (path.size() < dir.size() || path.substr(0, dir.size()) != dir) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

bool ValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 64) return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' || c == '-';
  });
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace specula::policy
