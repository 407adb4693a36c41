#include "tree_snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

namespace specula::core::testing {

std::string Snapshot(const std::string& root) {
  std::vector<std::string> lines;
  std::map<std::pair<dev_t, ino_t>, std::string> first_name;
  std::vector<std::string> todo{""};
  while (!todo.empty()) {
    std::string rel = todo.back();
    todo.pop_back();
    std::string p = root + rel;
    struct stat sb;
    if (::lstat(p.c_str(), &sb) != 0) {
      if (rel.empty()) return "<no tree>";
      lines.push_back(rel + " <vanished>");
      continue;
    }
    std::ostringstream l;
    l << (rel.empty() ? "." : rel) << " mode=" << std::oct << sb.st_mode << std::dec << " owner=" << sb.st_uid
      << ":" << sb.st_gid;
    if (S_ISREG(sb.st_mode)) {
      std::ifstream in(p, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string data = ss.str().substr(0, 200);
      std::string escaped;
      for (char ch : data) escaped += ch == '\n' ? std::string("\\n") : std::string(1, ch);
      l << " size=" << sb.st_size << " data=" << escaped;
      auto [it, fresh] = first_name.emplace(std::make_pair(sb.st_dev, sb.st_ino), rel);
      l << " nlink=" << sb.st_nlink << " inode-of=" << (fresh ? rel : it->second);
    } else if (S_ISLNK(sb.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof(buf));
      l << " -> " << std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
    } else if (S_ISDIR(sb.st_mode)) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
        todo.push_back(rel + "/" + e.path().filename().string());
      }
    }
    lines.push_back(l.str());
  }
  std::sort(lines.begin(), lines.end());
  // inode-of names the first path found, which depends on traversal order:
  // normalise to the smallest path of each inode group.
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::string NormaliseLinks(const std::string& snap) {
  std::istringstream in(snap);
  std::vector<std::string> lines;
  std::map<std::string, std::string> group_min;  // inode-of value -> smallest path
  for (std::string l; std::getline(in, l);) {
    lines.push_back(l);
    auto pos = l.find(" inode-of=");
    if (pos == std::string::npos) continue;
    std::string key = l.substr(pos + 10), path = l.substr(0, l.find(' '));
    auto it = group_min.find(key);
    if (it == group_min.end() || path < it->second) group_min[key] = path;
  }
  std::string out;
  for (auto& l : lines) {
    auto pos = l.find(" inode-of=");
    if (pos != std::string::npos) l = l.substr(0, pos) + " link-group=" + group_min[l.substr(pos + 10)];
    out += l + "\n";
  }
  return out;
}

}  // namespace specula::core::testing
