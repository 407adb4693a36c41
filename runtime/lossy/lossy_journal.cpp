#include "runtime/lossy/lossy_journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>

#include "common/time.h"
#include "runtime/lossy/lossy_fs.h"

namespace specula::lossy {
namespace {

using internal::RelOf;
using FileImage = LossyJournal::FileImage;
using Kind = LossyRecord::Kind;

constexpr const char* kDir = "lossy";
constexpr int kManifestVersion = 1;

// The absolute path of `rel` below an entry.
std::string FullPath(const std::string& entry_path, const std::string& rel) {
  return rel.empty() ? entry_path : entry_path + "/" + rel;
}

// Written to a temporary name and renamed into place; fsync'd when `durable`.
Status WriteStateFile(const std::string& path, const std::string& data, bool durable) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Error::FromErrno("create " + tmp);
  SPECULA_TRY_CTX(WriteAll(fd.get(), data), "write " + tmp);
  if (durable && ::fsync(fd.get()) != 0) return Error::FromErrno("fsync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Error::FromErrno("rename " + tmp);
  return Status::Ok();
}

Result<std::string> ReadStateFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::FromErrno("open " + path);
  bool over = false;
  SPECULA_ASSIGN_OR_RETURN(std::string data, ReadAll(fd.get(), 1ULL << 30, &over));
  if (over) return Error(Code::kDataLoss, path + ": too large");
  return data;
}

struct Glob {
  std::string parent, pattern;
};
bool IsGlob(const std::string& path, Glob* g) {
  size_t slash = path.rfind('/');
  std::string last = path.substr(slash + 1);
  if (last.find_first_of("*?[") == std::string::npos) return false;
  g->parent = slash == 0 ? "/" : path.substr(0, slash);
  g->pattern = last;
  return true;
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

// The names in `parent` matching `pattern`, sorted; empty if parent is missing.
Result<std::vector<std::string>> Expand(int root, const Glob& g) {
  std::vector<std::string> out;
  auto dir_fd = OpenBeneath(root, RelOf(g.parent), O_RDONLY | O_DIRECTORY);
  if (!dir_fd.ok()) {
    if (dir_fd.error().sys_errno() == ENOENT) return out;
    return std::move(dir_fd).error();
  }
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(dir_fd->get()));
  if (!dir) return Error::FromErrno("fdopendir " + g.parent);
  dir_fd->Release();  // owned by the DIR now
  while (struct dirent* de = ::readdir(dir.get())) {
    std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    if (::fnmatch(g.pattern.c_str(), name.c_str(), FNM_PERIOD) == 0) {
      out.push_back(g.parent == "/" ? "/" + name : g.parent + "/" + name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json ImageJson(const FileImage& f) {
  return {{"rel", f.rel},           {"is_dir", f.is_dir},         {"mode", f.mode},
          {"uid", f.uid},           {"gid", f.gid},               {"captured", f.captured},
          {"unreadable", f.unreadable}, {"size", f.size},         {"mtime_ns", f.mtime_ns},
          {"pre_image", f.pre_image},   {"kernel_fs", f.kernel_fs}};
}

}  // namespace

const char* ToString(Kind kind) {
  switch (kind) {
    case Kind::kWrite: return "write";
    case Kind::kCreate: return "create";
    case Kind::kDelete: return "delete";
    case Kind::kRestore: return "restore";
    case Kind::kRestoreFailed: return "restore_failed";
    case Kind::kSkipped: return "skipped";
  }
  return "?";
}

nlohmann::json LossyRecord::ToJson() const {
  return {{"kind", ToString(kind)},
          {"path", path},
          {"rule", rule},
          {"tag", tag},
          {"compensation", policy::ToString(compensation)},
          {"time_unix_ms", time_unix_ms},
          {"pre_image", pre_image},
          {"detail", detail}};
}

Result<LossyRecord> LossyRecord::FromJson(const nlohmann::json& j) {
  try {
    LossyRecord r;
    std::string kind = j.at("kind").get<std::string>();
    bool known = false;
    for (Kind k : {Kind::kWrite, Kind::kCreate, Kind::kDelete, Kind::kRestore, Kind::kRestoreFailed, Kind::kSkipped}) {
      if (kind == ToString(k)) {
        r.kind = k;
        known = true;
      }
    }
    if (!known) return Error(Code::kDataLoss, "lossy record: unknown kind \"" + kind + "\"");
    r.path = j.at("path").get<std::string>();
    r.rule = j.value("rule", "");
    r.tag = j.value("tag", "");
    r.compensation = j.value("compensation", "restore") == "none" ? policy::Compensation::kNone
                                                                  : policy::Compensation::kRestore;
    r.time_unix_ms = j.value("time_unix_ms", int64_t{0});
    r.pre_image = j.value("pre_image", "");
    r.detail = j.value("detail", "");
    return r;
  } catch (const std::exception& e) {
    return Error(Code::kDataLoss, std::string("lossy record: ") + e.what());
  }
}

Result<LossyJournal> LossyJournal::Prepare(const policy::Policy& policy, const std::string& state_dir,
                                           LossyOptions options) {
  if (state_dir.empty()) return Error(Code::kInvalidArgument, "lossy journal: empty state dir");
  if (options.host_root.empty() || options.host_root[0] != '/') {
    return Error(Code::kInvalidArgument, "lossy journal: host root must be absolute: " + options.host_root);
  }
  LossyJournal j;
  j.options_ = options;
  j.state_dir_ = state_dir;
  j.prepared_unix_ns_ = NowUnixNs();
  j.root_ = UniqueFd(::open(options.host_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!j.root_) return Error::FromErrno("lossy journal: open host root " + options.host_root);
  std::string dir = state_dir + "/" + kDir;
  if (::mkdir(dir.c_str(), 0700) != 0) {
    // An existing journal may hold pre-images not yet restored: never overwrite it.
    return Error::FromErrno("lossy journal: create " + dir);
  }
  Status captured = j.CaptureAll(policy);
  if (!captured.ok()) {
    // Nothing ran yet, so nothing needs these pre-images: leave no half journal.
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return std::move(captured).error();
  }
  return j;
}

Status LossyJournal::CaptureAll(const policy::Policy& policy) {
  std::string root_prefix = options_.host_root == "/" ? "" : options_.host_root;
  while (!root_prefix.empty() && root_prefix.back() == '/') root_prefix.pop_back();

  std::vector<LossyRecord> skipped;
  uint64_t total = 0;
  const internal::SnapshotLimits limits{options_.max_file_bytes, options_.max_files_per_dir};
  for (const policy::PathRule& rule : policy.paths) {
    if (rule.mode != policy::PathMode::kLossy) continue;
    std::vector<std::string> paths;
    Glob glob;
    if (IsGlob(rule.path, &glob)) {
      SPECULA_ASSIGN_OR_RETURN(paths, Expand(root_.get(), glob).Context("lossy path " + rule.path));
    } else {
      paths.push_back(rule.path);
    }
    LossyRecord skip{Kind::kSkipped, rule.path, rule.path, rule.tag, rule.compensation};
    if (paths.empty()) {
      skip.detail = "no match on the host";
      skipped.push_back(skip);
    }
    for (const std::string& path : paths) {
      bool duplicate = std::any_of(entries_.begin(), entries_.end(),
                                   [&](const Entry& e) { return e.path == path; });
      if (duplicate) continue;  // an earlier rule covers it already
      SPECULA_ASSIGN_OR_RETURN(std::vector<FileImage> snap,
                               internal::Snapshot(root_.get(), RelOf(path), limits)
                                   .Context("lossy journal: capture " + path));
      if (snap.empty()) {
        spdlog::warn("lossy path {} (tag {}) is not present on the host; skipped", path, rule.tag);
        skip.path = path;
        skip.detail = "not present on the host";
        skipped.push_back(skip);
        continue;
      }
      Entry e{rule.path, path, rule.tag, rule.compensation, snap[0].is_dir, {}, {}};
      const size_t index = entries_.size();
      for (size_t k = 0; k < snap.size(); ++k) {
        FileImage& f = snap[k];
        if (f.is_dir || rule.compensation != policy::Compensation::kRestore) continue;
        std::string full = FullPath(path, f.rel);
        if (f.unreadable) {
          spdlog::warn("lossy path {}: cannot be read, so it cannot be restored", full);
          continue;
        }
        if (!f.captured) {
          return Error(Code::kResourceExhausted, "lossy journal: pre-image of " + full + " is larger than " +
                                                     std::to_string(options_.max_file_bytes) + " bytes");
        }
        total += f.content.size();
        if (total > options_.max_total_bytes) {
          return Error(Code::kResourceExhausted, "lossy journal: pre-images exceed " +
                                                     std::to_string(options_.max_total_bytes) + " bytes at " + full);
        }
        f.pre_image = std::string(kDir) + "/pre-" + std::to_string(index) + "-" + std::to_string(k);
        SPECULA_TRY_CTX(WriteStateFile(state_dir_ + "/" + f.pre_image, f.content, !f.kernel_fs), "lossy journal");
      }
      e.before = snap;
      e.reported = std::move(snap);
      binds_.push_back(sandbox::BindMount{root_prefix + path, path, false});
      entries_.push_back(std::move(e));
    }
  }
  SPECULA_TRY(WriteManifest());
  std::vector<LossyRecord> ignored;
  for (LossyRecord& r : skipped) SPECULA_TRY(Journal(ignored, std::move(r)));
  return Status::Ok();
}

Status LossyJournal::Journal(std::vector<LossyRecord>& out, LossyRecord record) {
  record.time_unix_ms = NowMs();
  std::string line = record.ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  records_.push_back(record);
  out.push_back(std::move(record));
  std::string path = state_dir_ + "/" + kDir + "/journal.jsonl";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Error::FromErrno("lossy journal: open " + path);
  return WriteAll(fd.get(), line).Context("lossy journal: append " + path);
}

Status LossyJournal::WriteManifest() const {
  nlohmann::json entries = nlohmann::json::array();
  for (const Entry& e : entries_) {
    nlohmann::json files = nlohmann::json::array();
    for (const FileImage& f : e.before) files.push_back(ImageJson(f));
    entries.push_back({{"rule", e.rule},
                       {"path", e.path},
                       {"tag", e.tag},
                       {"compensation", policy::ToString(e.compensation)},
                       {"is_dir", e.is_dir},
                       {"files", files}});
  }
  nlohmann::json binds = nlohmann::json::array();
  for (const auto& b : binds_) binds.push_back({{"host_path", b.host_path}, {"sandbox_path", b.sandbox_path}});
  nlohmann::json m = {{"version", kManifestVersion},
                      {"host_root", options_.host_root},
                      {"prepared_unix_ns", prepared_unix_ns_},
                      {"entries", entries},
                      {"binds", binds}};
  // Durable if any pre-image is: it is what finds them again after a crash.
  bool durable = std::any_of(entries_.begin(), entries_.end(), [](const Entry& e) {
    return std::any_of(e.before.begin(), e.before.end(),
                       [](const FileImage& f) { return !f.pre_image.empty() && !f.kernel_fs; });
  });
  SPECULA_TRY_CTX(WriteStateFile(state_dir_ + "/" + kDir + "/manifest.json",
                                 m.dump(1, ' ', false, nlohmann::json::error_handler_t::replace), durable),
                  "lossy journal: manifest");
  if (durable) {
    // The names (renames into lossy/, lossy/ in the state dir) must last too.
    for (const std::string& d : {state_dir_ + "/" + kDir, state_dir_}) {
      UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd || ::fsync(fd.get()) != 0) return Error::FromErrno("lossy journal: fsync " + d);
    }
  }
  return Status::Ok();
}

Result<LossyJournal> LossyJournal::Load(const std::string& state_dir, LossyOptions options) {
  std::string dir = state_dir + "/" + kDir;
  SPECULA_ASSIGN_OR_RETURN(std::string text, ReadStateFile(dir + "/manifest.json"));
  try {
    nlohmann::json m = nlohmann::json::parse(text);
    if (m.at("version").get<int>() != kManifestVersion) {
      return Error(Code::kDataLoss, dir + "/manifest.json: unknown version");
    }
    LossyJournal j;
    j.options_ = options;
    j.options_.host_root = m.at("host_root").get<std::string>();
    j.state_dir_ = state_dir;
    j.prepared_unix_ns_ = m.value("prepared_unix_ns", int64_t{0});
    j.root_ = UniqueFd(::open(j.options_.host_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!j.root_) return Error::FromErrno("lossy journal: open host root " + j.options_.host_root);
    for (const auto& je : m.at("entries")) {
      Entry e;
      e.rule = je.at("rule").get<std::string>();
      e.path = je.at("path").get<std::string>();
      e.tag = je.at("tag").get<std::string>();
      e.compensation = je.at("compensation").get<std::string>() == "none" ? policy::Compensation::kNone
                                                                          : policy::Compensation::kRestore;
      e.is_dir = je.at("is_dir").get<bool>();
      for (const auto& jf : je.at("files")) {
        FileImage f;
        f.rel = jf.at("rel").get<std::string>();
        f.is_dir = jf.at("is_dir").get<bool>();
        f.mode = jf.at("mode").get<uint32_t>();
        f.uid = jf.at("uid").get<uint32_t>();
        f.gid = jf.at("gid").get<uint32_t>();
        f.unreadable = jf.at("unreadable").get<bool>();
        f.size = jf.at("size").get<uint64_t>();
        f.mtime_ns = jf.at("mtime_ns").get<int64_t>();
        f.pre_image = jf.at("pre_image").get<std::string>();
        f.kernel_fs = jf.value("kernel_fs", false);
        // Only restore entries keep content on disk; the rest compare by size and mtime.
        if (!f.pre_image.empty()) {
          if (f.pre_image.find("..") != std::string::npos || f.pre_image[0] == '/') {
            return Error(Code::kDataLoss, dir + "/manifest.json: bad pre-image name " + f.pre_image);
          }
          SPECULA_ASSIGN_OR_RETURN(f.content, ReadStateFile(state_dir + "/" + f.pre_image));
          f.captured = true;
        }
        e.before.push_back(std::move(f));
      }
      e.reported = e.before;
      j.entries_.push_back(std::move(e));
    }
    for (const auto& jb : m.at("binds")) {
      j.binds_.push_back(sandbox::BindMount{jb.at("host_path").get<std::string>(),
                                            jb.at("sandbox_path").get<std::string>(), false});
    }
    return j;
  } catch (const nlohmann::json::exception& e) {
    return Error(Code::kDataLoss, dir + "/manifest.json: " + e.what());
  }
}

Result<std::vector<LossyRecord>> LossyJournal::CollectEffects() {
  collected_ = true;
  std::vector<LossyRecord> out;
  const internal::SnapshotLimits limits{options_.max_file_bytes, options_.max_files_per_dir};
  for (Entry& e : entries_) {
    SPECULA_ASSIGN_OR_RETURN(std::vector<FileImage> now,
                             internal::Snapshot(root_.get(), RelOf(e.path), limits)
                                 .Context("lossy journal: compare " + e.path));
    std::map<std::string, const FileImage*> was, is;
    for (const FileImage& f : e.reported) was[f.rel] = &f;
    for (const FileImage& f : now) is[f.rel] = &f;
    std::map<std::string, const FileImage*> before;
    for (const FileImage& f : e.before) before[f.rel] = &f;
    auto record = [&](Kind kind, const std::string& rel, std::string detail) -> Status {
      auto b = before.find(rel);
      std::string pre = b != before.end() ? b->second->pre_image : "";
      return Journal(out, LossyRecord{kind, FullPath(e.path, rel), e.rule, e.tag, e.compensation, 0, pre,
                                      std::move(detail)});
    };
    for (const auto& [rel, old] : was) {
      auto cur = is.find(rel);
      if (cur == is.end()) {
        SPECULA_TRY(record(Kind::kDelete, rel, old->is_dir ? "directory removed" : "file removed"));
      } else if (internal::Differs(*old, *cur->second)) {
        SPECULA_TRY(record(Kind::kWrite, rel, internal::DescribeChange(*old, *cur->second)));
      }
    }
    for (const auto& [rel, cur] : is) {
      if (was.count(rel) == 0) {
        SPECULA_TRY(record(Kind::kCreate, rel,
                           cur->is_dir ? "directory created" : std::to_string(cur->size) + " bytes"));
      }
    }
    e.reported = std::move(now);
  }
  return out;
}

LossyJournal::CommittedState LossyJournal::Committed() const {
  CommittedState out;
  for (const Entry& e : entries_) {
    std::map<std::string, const FileImage*> before, after;
    for (const FileImage& f : e.before) before[f.rel] = &f;
    for (const FileImage& f : e.reported) after[f.rel] = &f;
    for (const FileImage& f : e.before) {
      if (after.count(f.rel) == 0) out[FullPath(e.path, f.rel)] = CommittedImage{false, f};
    }
    for (const FileImage& f : e.reported) {
      auto b = before.find(f.rel);
      if (b != before.end() && !internal::Differs(*b->second, f) &&
          (!b->second->captured || !f.captured || b->second->content == f.content)) {
        continue;  // unchanged by this branch
      }
      out[FullPath(e.path, f.rel)] = CommittedImage{true, f};
    }
  }
  return out;
}

Result<std::vector<LossyRecord>> LossyJournal::Restore(const CommittedState* committed) {
  std::vector<LossyRecord> out;
  std::string failures;
  const internal::SnapshotLimits limits{options_.max_file_bytes, options_.max_files_per_dir};
  for (Entry& e : entries_) {
    if (e.compensation != policy::Compensation::kRestore) continue;
    auto journal = [&](Kind kind, const FileImage& f, std::string detail) -> Status {
      if (kind == Kind::kRestoreFailed) failures += "\n  " + FullPath(e.path, f.rel) + ": " + detail;
      return Journal(out, LossyRecord{kind, FullPath(e.path, f.rel), e.rule, e.tag, e.compensation, 0,
                                      f.pre_image, std::move(detail)});
    };
    // Removes `rel` below the root without following links; "" or why not.
    auto remove_below = [&](const std::string& rel, bool is_dir) -> std::string {
      size_t slash = rel.rfind('/');
      std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash);
      std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
      auto pfd = OpenBeneath(root_.get(), parent, O_RDONLY | O_DIRECTORY);
      if (!pfd.ok()) return pfd.error().message();
      if (::unlinkat(pfd->get(), base.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0) {
        return Error::FromErrno("remove").message();
      }
      return "";
    };
    auto snap = internal::Snapshot(root_.get(), RelOf(e.path), limits);
    if (!snap.ok()) {
      SPECULA_TRY(journal(Kind::kRestoreFailed, e.before.front(), snap.error().message()));
      continue;
    }
    std::map<std::string, const FileImage*> now;
    for (const FileImage& f : *snap) now[f.rel] = &f;
    std::map<std::string, const FileImage*> before, left;
    for (const FileImage& f : e.before) before[f.rel] = &f;
    for (const FileImage& f : e.reported) left[f.rel] = &f;
    // Unchanged when the branch's action ended: not this branch's to undo.
    auto untouched = [&](const FileImage& pre) {
      if (!collected_) return false;
      auto l = left.find(pre.rel);
      return l != left.end() && !internal::Differs(pre, *l->second) &&
             (!pre.captured || !l->second->captured || pre.content == l->second->content);
    };

    // 1. Put back what was there. `before` is in walk order: a directory
    //    comes before what it contains, so parents are recreated first.
    for (const FileImage& pre : e.before) {
      const std::string rel = JoinRel(RelOf(e.path), pre.rel);
      auto it = now.find(pre.rel);
      const FileImage* cur = it == now.end() ? nullptr : it->second;
      // What to put back: the pre-image, or what a promoted sibling left.
      const CommittedImage* won = nullptr;
      if (committed != nullptr) {
        auto c = committed->find(FullPath(e.path, pre.rel));
        if (c != committed->end()) won = &c->second;
      }
      if (won != nullptr && !won->present) {
        if (cur != nullptr) {
          std::string err = remove_below(rel, cur->is_dir);
          SPECULA_TRY(journal(err.empty() ? Kind::kRestore : Kind::kRestoreFailed, *cur,
                              err.empty() ? "removed: the promoted branch deleted it" : err));
        }
        continue;
      }
      if (won != nullptr && !won->image.is_dir && !won->image.captured) {
        SPECULA_TRY(journal(Kind::kRestoreFailed, pre, "the promoted branch's state is too large to put back"));
        continue;
      }
      if (won == nullptr && untouched(pre)) continue;
      const FileImage& f = won != nullptr ? won->image : pre;
      if (cur != nullptr && !internal::Differs(f, *cur) &&
          (!f.captured || !cur->captured || f.content == cur->content)) {
        continue;  // unchanged
      }
      if (cur != nullptr && cur->is_dir != f.is_dir) {
        SPECULA_TRY(journal(Kind::kRestoreFailed, f, "changed type; left as it is"));
        continue;
      }
      if (!f.is_dir && !f.captured) {
        SPECULA_TRY(journal(Kind::kRestoreFailed, f, "no pre-image (unreadable or too large)"));
        continue;
      }
      size_t slash = rel.rfind('/');
      std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash);
      std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
      UniqueFd fd;
      bool created = false;
      if (cur == nullptr) {
        auto pfd = OpenBeneath(root_.get(), parent, O_RDONLY | O_DIRECTORY);
        if (!pfd.ok()) {
          SPECULA_TRY(journal(Kind::kRestoreFailed, f, pfd.error().message()));
          continue;
        }
        if (f.is_dir) {
          if (::mkdirat(pfd->get(), base.c_str(), f.mode) != 0) {
            SPECULA_TRY(journal(Kind::kRestoreFailed, f, Error::FromErrno("mkdir").message()));
            continue;
          }
          fd = UniqueFd(::openat(pfd->get(), base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        } else {
          fd = UniqueFd(::openat(pfd->get(), base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                 f.mode));
        }
        if (!fd) {
          SPECULA_TRY(journal(Kind::kRestoreFailed, f, Error::FromErrno("create").message()));
          continue;
        }
        created = true;
      } else {
        bool content_changed = !f.is_dir && (!cur->captured || cur->content != f.content);
        auto opened = OpenBeneath(root_.get(), rel,
                                  f.is_dir ? O_RDONLY | O_DIRECTORY
                                           : (content_changed ? O_WRONLY | O_TRUNC | O_NOCTTY : O_RDONLY | O_NOCTTY));
        if (!opened.ok()) {
          SPECULA_TRY(journal(Kind::kRestoreFailed, f, opened.error().message()));
          continue;
        }
        fd = std::move(*opened);
      }
      bool write_content = !f.is_dir && (created || !cur->captured || cur->content != f.content);
      if (write_content) {
        // One write() for a short value: a sysctl parses each write on its own.
        if (Status st = WriteAll(fd.get(), f.content); !st.ok()) {
          SPECULA_TRY(journal(Kind::kRestoreFailed, f, "write back: " + st.error().message()));
          continue;
        }
      }
      // Mode and owner only where they changed: /proc refuses chmod outright.
      if ((created || cur->mode != f.mode) && ::fchmod(fd.get(), f.mode) != 0) {
        SPECULA_TRY(journal(Kind::kRestoreFailed, f, Error::FromErrno("chmod").message()));
        continue;
      }
      if ((created || cur->uid != f.uid || cur->gid != f.gid) && ::fchown(fd.get(), f.uid, f.gid) != 0) {
        SPECULA_TRY(journal(Kind::kRestoreFailed, f, Error::FromErrno("chown").message()));
        continue;
      }
      std::string detail = created ? (f.is_dir ? "directory recreated" : "file recreated")
                                   : internal::DescribeChange(*cur, f);
      SPECULA_TRY(journal(Kind::kRestore, f, detail));
    }

    // 2. Remove what the branch added, children before their directories.
    for (auto it = snap->rbegin(); it != snap->rend(); ++it) {
      const FileImage& f = *it;
      if (before.count(f.rel) != 0) continue;
      // Created by the promoted sibling too: it stays (committed).
      if (committed != nullptr && committed->count(FullPath(e.path, f.rel)) != 0) continue;
      // Not there when the branch's action ended: someone else's.
      if (collected_ && left.count(f.rel) == 0) continue;
      if (std::string err = remove_below(JoinRel(RelOf(e.path), f.rel), f.is_dir); !err.empty()) {
        SPECULA_TRY(journal(Kind::kRestoreFailed, f, err));
        continue;
      }
      SPECULA_TRY(journal(Kind::kRestore, f, f.is_dir ? "created directory removed" : "created file removed"));
    }
    // What a later CollectEffects compares against: the restored state.
    auto after = internal::Snapshot(root_.get(), RelOf(e.path), limits);
    if (after.ok()) e.reported = std::move(*after);
  }
  if (!failures.empty()) {
    return Error(Code::kInternal, "lossy journal: could not restore:" + failures);
  }
  return out;
}

nlohmann::json LossyJournal::ToJson() const {
  nlohmann::json entries = nlohmann::json::array();
  for (const Entry& e : entries_) {
    entries.push_back({{"rule", e.rule},
                       {"path", e.path},
                       {"tag", e.tag},
                       {"compensation", policy::ToString(e.compensation)},
                       {"directory", e.is_dir}});
  }
  nlohmann::json records = nlohmann::json::array();
  for (const LossyRecord& r : records_) records.push_back(r.ToJson());
  return {{"entries", entries}, {"records", records}};
}

}  // namespace specula::lossy
