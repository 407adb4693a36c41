#include "runtime/apply/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace specula::apply {

const char* ToString(JournalState s) {
  switch (s) {
    case JournalState::kStaging: return "staging";
    case JournalState::kCommitted: return "committed";
    case JournalState::kDone: return "done";
    case JournalState::kAborted: return "aborted";
    case JournalState::kReverting: return "reverting";
    case JournalState::kReverted: return "reverted";
  }
  return "unknown";
}

PostRec PostRec::Of(const struct stat& st) {
  PostRec p;
  p.exists = true;
  p.id = FileId::Of(st);
  p.mode = st.st_mode;
  p.uid = st.st_uid;
  p.gid = st.st_gid;
  // A directory's size is filesystem bookkeeping; its mtime/ctime say enough.
  p.size = S_ISDIR(st.st_mode) ? 0 : static_cast<uint64_t>(st.st_size);
  p.mtime_sec = st.st_mtim.tv_sec;
  p.mtime_nsec = st.st_mtim.tv_nsec;
  p.ctime_sec = st.st_ctim.tv_sec;
  p.ctime_nsec = st.st_ctim.tv_nsec;
  return p;
}

namespace {

using nlohmann::json;

const char* KindName(OpKind k) {
  switch (k) {
    case OpKind::kPut: return "put";
    case OpKind::kDelete: return "delete";
    case OpKind::kMeta: return "meta";
  }
  return "?";
}

// A path as the journal stores it: printable ASCII except '%' as itself,
// every other byte as %XX. The kernel allows any byte but '/' and NUL in a
// name, the branch chooses its names, and JSON strings must be UTF-8.
std::string EscapeName(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

Result<std::string> UnescapeName(const std::string& s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? hex(s[i + 1]) : -1, lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return Error(Code::kDataLoss, "bad escape in journal path: " + s);
    out.push_back(static_cast<char>(hi << 4 | lo));
    i += 2;
  }
  return out;
}

json MetaToJson(const MetaRec& m) {
  return {{"mode", m.mode}, {"uid", m.uid}, {"gid", m.gid},
          {"mtime", {m.mtime_sec, m.mtime_nsec}}};
}
MetaRec MetaFromJson(const json& j) {
  MetaRec m;
  m.mode = j.at("mode").get<uint32_t>();
  m.uid = j.at("uid").get<uint32_t>();
  m.gid = j.at("gid").get<uint32_t>();
  m.mtime_sec = j.at("mtime").at(0).get<int64_t>();
  m.mtime_nsec = j.at("mtime").at(1).get<int64_t>();
  return m;
}

json PostToJson(const PostRec& p) {
  if (!p.exists) return nullptr;
  return {{"id", {p.id.dev, p.id.ino}}, {"mode", p.mode}, {"uid", p.uid}, {"gid", p.gid},
          {"size", p.size}, {"mtime", {p.mtime_sec, p.mtime_nsec}},
          {"ctime", {p.ctime_sec, p.ctime_nsec}}};
}
PostRec PostFromJson(const json& j) {
  PostRec p;
  if (j.is_null()) return p;
  p.exists = true;
  p.id = {j.at("id").at(0).get<uint64_t>(), j.at("id").at(1).get<uint64_t>()};
  p.mode = j.at("mode").get<uint32_t>();
  p.uid = j.at("uid").get<uint32_t>();
  p.gid = j.at("gid").get<uint32_t>();
  p.size = j.at("size").get<uint64_t>();
  p.mtime_sec = j.at("mtime").at(0).get<int64_t>();
  p.mtime_nsec = j.at("mtime").at(1).get<int64_t>();
  p.ctime_sec = j.at("ctime").at(0).get<int64_t>();
  p.ctime_nsec = j.at("ctime").at(1).get<int64_t>();
  return p;
}

std::string Serialize(const Journal& jr) {
  json ops = json::array();
  for (const auto& op : jr.ops) {
    json o = {{"kind", KindName(op.kind)}, {"path", EscapeName(op.path)}};
    if (op.kind == OpKind::kPut) {
      o["stage"] = op.stage;
      o["staged"] = {op.staged.dev, op.staged.ino};
    }
    if (op.kind == OpKind::kMeta) {
      o["old"] = MetaToJson(op.old_meta);
      o["new"] = MetaToJson(op.new_meta);
    }
    o["post"] = PostToJson(op.post);
    if (!op.subtree_post.empty()) {
      json sub = json::array();
      for (const auto& [rel, post] : op.subtree_post) sub.push_back({EscapeName(rel), PostToJson(post)});
      o["subtree"] = std::move(sub);
    }
    ops.push_back(std::move(o));
  }
  json j = {{"version", jr.version}, {"id", jr.id}, {"state", ToString(jr.state)},
            {"base", {jr.base.dev, jr.base.ino}}, {"ops", std::move(ops)}};
  return j.dump(1) + "\n";
}

Result<Journal> Parse(const std::string& text) {
  try {
    json j = json::parse(text);
    Journal jr;
    jr.version = j.at("version").get<int>();
    if (jr.version != 1 && jr.version != kJournalVersion) {
      return Error(Code::kDataLoss, "unsupported journal version " + std::to_string(jr.version));
    }
    jr.id = j.at("id").get<std::string>();
    std::string state = j.at("state").get<std::string>();
    bool known = false;
    for (auto s : {JournalState::kStaging, JournalState::kCommitted, JournalState::kDone,
                   JournalState::kAborted, JournalState::kReverting, JournalState::kReverted}) {
      if (state == ToString(s)) { jr.state = s; known = true; }
    }
    if (!known) return Error(Code::kDataLoss, "unknown journal state " + state);
    jr.base = {j.at("base").at(0).get<uint64_t>(), j.at("base").at(1).get<uint64_t>()};
    auto name = [&](const json& v) -> Result<std::string> {
      if (jr.version == 1) return v.get<std::string>();
      return UnescapeName(v.get<std::string>());
    };
    for (const auto& o : j.at("ops")) {
      JournalOp op;
      std::string kind = o.at("kind").get<std::string>();
      if (kind == "put") op.kind = OpKind::kPut;
      else if (kind == "delete") op.kind = OpKind::kDelete;
      else if (kind == "meta") op.kind = OpKind::kMeta;
      else return Error(Code::kDataLoss, "unknown op kind " + kind);
      SPECULA_ASSIGN_OR_RETURN(op.path, name(o.at("path")));
      // Paths are re-validated: a damaged journal must not steer renames.
      if (!IsCleanRelPath(op.path)) {
        return Error(Code::kDataLoss, "bad op path in journal: " + op.path);
      }
      if (op.kind == OpKind::kPut) {
        op.stage = o.at("stage").get<std::string>();
        if (op.stage.find('/') != std::string::npos || op.stage.rfind(".specula-stage.", 0) != 0) {
          return Error(Code::kDataLoss, "bad staging name in journal: " + op.stage);
        }
        op.staged = {o.at("staged").at(0).get<uint64_t>(), o.at("staged").at(1).get<uint64_t>()};
      }
      if (op.kind == OpKind::kMeta) {
        op.old_meta = MetaFromJson(o.at("old"));
        op.new_meta = MetaFromJson(o.at("new"));
      }
      op.post = PostFromJson(o.at("post"));
      if (o.contains("subtree")) {
        for (const auto& e : o.at("subtree")) {
          SPECULA_ASSIGN_OR_RETURN(std::string rel, name(e.at(0)));
          op.subtree_post.emplace_back(std::move(rel), PostFromJson(e.at(1)));
        }
      }
      jr.ops.push_back(std::move(op));
    }
    return jr;
  } catch (const std::exception& e) {
    return Error(Code::kDataLoss, std::string("corrupt journal: ") + e.what());
  }
}

}  // namespace

Status WriteJournal(int journal_dir_fd, const Journal& j, CrashCounter* steps) {
  std::string text;
  try {
    text = Serialize(j);  // every string in it is ASCII; a throw here would be a bug
  } catch (const std::exception& e) {
    return Error(Code::kInternal, std::string("write journal: ") + e.what());
  }
  int fd = ::openat(journal_dir_fd, "journal.tmp",
                    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Error::FromErrno("write journal: open journal.tmp");
  UniqueFd f(fd);
  for (size_t off = 0; off < text.size();) {
    ssize_t w = ::write(f.get(), text.data() + off, text.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Error::FromErrno("write journal");
    off += static_cast<size_t>(w);
  }
  SPECULA_TRY_CTX(FsyncFd(f.get(), "journal.tmp"), "write journal");
  f.Reset();
  steps->Step();
  SPECULA_TRY_CTX(RenameAt(journal_dir_fd, "journal.tmp", journal_dir_fd, kJournalFile, 0,
                           "journal.tmp"), "write journal");
  SPECULA_TRY_CTX(FsyncFd(journal_dir_fd, "journal dir"), "write journal");
  steps->Step();
  return Status::Ok();
}

Result<std::optional<Journal>> ReadJournal(int journal_dir_fd) {
  int fd = ::openat(journal_dir_fd, kJournalFile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<Journal>();
    return Error::FromErrno("read journal");
  }
  UniqueFd f(fd);
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(f.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read journal");
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  SPECULA_ASSIGN_OR_RETURN(Journal j, Parse(text));
  return std::optional(std::move(j));
}

}  // namespace specula::apply
