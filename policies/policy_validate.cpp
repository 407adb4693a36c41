// Checks on the merged policy: contradictions between sections or between a
// file and the files it extends, which no single key can show.
#include <fnmatch.h>

#include "common/paths.h"
#include "policies/containment.h"
#include "policies/policy_internal.h"
#include "policies/value_parsers.h"

namespace specula::policy::internal {
namespace {

const Origin* Find(const std::map<std::string, Origin>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

std::string Quote(std::string_view s) { return QuoteValue(s); }

// True if lossy rule `inner` is covered by lossy rule `outer` (a directory
// above it, or a glob in the same directory that matches its name).
bool Covers(const std::string& outer, const std::string& inner) {
  if (outer == inner) return false;
  size_t os = outer.rfind('/'), is = inner.rfind('/');
  std::string outer_last = outer.substr(os + 1);
  if (outer_last.find_first_of("*?[") != std::string::npos) {
    return outer.substr(0, os) == inner.substr(0, is) &&
           ::fnmatch(outer_last.c_str(), inner.substr(is + 1).c_str(), FNM_PERIOD) == 0;
  }
  return PathIsWithin(inner, outer);
}

// True if lossy path `p` (a glob in its last component allowed) names `knob`.
bool Names(const std::string& p, std::string_view knob) {
  size_t ps = p.rfind('/'), ks = knob.rfind('/');
  if (p.substr(0, ps) != knob.substr(0, ks)) return false;
  return ::fnmatch(p.substr(ps + 1).c_str(), std::string(knob.substr(ks + 1)).c_str(), FNM_PERIOD) == 0;
}

// Lossy rules that could never do what they say, or would hand a branch the
// host or the runtime: checked here so `policy check` and session.create
// refuse them alike.
void ValidateLossyReach(const Policy& policy, const Provenance& prov, PolicyErrors& errors) {
  for (const PathRule& r : policy.paths) {
    if (r.mode != PathMode::kLossy) continue;
    const Origin* at = Find(prov.paths, r.path);
    std::string key = at ? at->key + ".path" : "filesystem.lossy";
    // "/" itself is refused while parsing; a glob right below it ("/*",
    // "/**", "/[a-z]*") is every top-level directory, which is the root.
    if (r.path.rfind('/') == 0 && r.path.find_first_of("*?[") != std::string::npos) {
      AddAt(errors, at, key,
            "lossy path " + Quote(r.path) + " covers the root (a glob of top-level entries); nothing would be sandboxed");
      continue;
    }
    if (LossyPathTouches(r.path, kDefaultStateDir)) {
      AddAt(errors, at, key,
            "lossy path " + Quote(r.path) + " reaches the daemon's state dir " + Quote(kDefaultStateDir) +
                " (its database, layers and images)");
    }
    for (std::string_view knob : {"/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname"}) {
      if (!BindCannotReachHost(knob) || !Names(r.path, knob)) continue;
      AddAt(errors, at, key,
            "lossy path " + Quote(r.path) + " names " + std::string(knob) +
                ", which follows the uts namespace of whoever reads it: no bind reaches the host's value "
                "(set [sandbox] hostname instead)");
    }
  }
}

}  // namespace

void ValidateMerged(const Policy& policy, const Provenance& prov, PolicyErrors& errors) {
  ValidateLossyReach(policy, prov, errors);

  // A lossy path inside a hidden one: the branch could write to the host
  // through a path the policy says it must not even see.
  for (const PathRule& lossy : policy.paths) {
    if (lossy.mode != PathMode::kLossy) continue;
    for (const PathRule& hidden : policy.paths) {
      if (hidden.mode != PathMode::kHidden || !PathIsWithin(lossy.path, hidden.path)) continue;
      const Origin* lo = Find(prov.paths, lossy.path);
      const Origin* ho = Find(prov.paths, hidden.path);
      std::string where = ho ? " (" + ho->key + ", " + ho->Where() + ")" : "";
      AddAt(errors, lo, lo ? lo->key : "filesystem.lossy",
            "lossy path " + Quote(lossy.path) + " is inside hidden path " + Quote(hidden.path) + where);
    }
  }

  // Nested lossy rules: two journals of one file, possibly with different
  // compensations; which pre-image wins would depend on the order.
  for (const PathRule& outer : policy.paths) {
    if (outer.mode != PathMode::kLossy) continue;
    for (const PathRule& inner : policy.paths) {
      if (inner.mode != PathMode::kLossy || !Covers(outer.path, inner.path)) continue;
      const Origin* io = Find(prov.paths, inner.path);
      const Origin* oo = Find(prov.paths, outer.path);
      std::string where = oo ? " (" + oo->key + ", " + oo->Where() + ")" : "";
      AddAt(errors, io, io ? io->key : "filesystem.lossy",
            "lossy path " + Quote(inner.path) + " is already covered by lossy path " + Quote(outer.path) + where);
    }
  }

  const Speculation& sp = policy.speculation;
  if (sp.max_concurrent_branches > sp.max_branches_per_session) {
    const Origin* c = Find(prov.keys, "speculation.max_concurrent");
    const Origin* b = Find(prov.keys, "speculation.max_branches");
    // Point at whichever of the two was set last in the chain's top file,
    // falling back to the other; the message names both values.
    const Origin* at = c ? c : b;
    if (c && b && b->file == c->file && b->line > c->line) at = b;
    if (c && b && b->file != c->file && b->file == policy.source) at = b;
    AddAt(errors, at, at ? at->key : "speculation.max_concurrent",
          "max_concurrent (" + std::to_string(sp.max_concurrent_branches) +
              ") exceeds max_branches (" + std::to_string(sp.max_branches_per_session) + ")");
  }

  const Network& net = policy.network;
  const Origin* mode = Find(prov.keys, "network.mode");
  if (net.mode == NetworkMode::kAllowlist && net.allow.empty() && !Find(prov.keys, "network.allow")) {
    AddAt(errors, mode, "network.mode", "mode \"allowlist\" needs a non-empty network.allow");
  }
  if (net.mode != NetworkMode::kAllowlist && Find(prov.keys, "network.allow") != nullptr) {
    const Origin* allow = Find(prov.keys, "network.allow");
    AddAt(errors, allow, "network.allow",
          std::string("network.allow is only used with mode \"allowlist\", but mode is \"") +
              ToString(net.mode) + "\"");
  }
  if (net.mode == NetworkMode::kLossyEgress && net.lossy_tag.empty()) {
    AddAt(errors, mode, "network.mode", "mode \"lossy\" needs network.lossy_tag (egress is journaled under it)");
  }
  if (net.mode != NetworkMode::kLossyEgress && !net.lossy_tag.empty()) {
    const Origin* tag = Find(prov.keys, "network.lossy_tag");
    AddAt(errors, tag, "network.lossy_tag",
          std::string("network.lossy_tag is only used with mode \"lossy\", but mode is \"") +
              ToString(net.mode) + "\"");
  }
}

}  // namespace specula::policy::internal
