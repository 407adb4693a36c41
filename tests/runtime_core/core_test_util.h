// Shared fixture for the speculation-core integration tests: a private state
// dir, a SessionManager over the real sandbox and CRIU, cleanup that runs
// even when a test fails.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/files.h"
#include "runtime/core/session_manager.h"

namespace specula::core::testing {

class CoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/specula-core-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    OpenManager();
  }
  void OpenManager(size_t squash_threshold = 16, uint32_t pool_per_session = 0) {
    mgr_.reset();
    SessionManagerOptions o;
    o.state_dir = dir_ + "/state";
    o.squash_threshold = squash_threshold;
    o.pool_per_session = pool_per_session;
    auto m = SessionManager::Open(o);
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    mgr_ = std::move(*m);
  }
  void TearDown() override {
    mgr_.reset();  // discards branches, unmounts CRIU's tmpfs
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }
  // A scratch path inside sandboxes (the base is the host's /), unique per test run.
  std::string Scratch() const { return "/var/tmp/specula-core-scratch-" + std::to_string(::getpid()); }

  std::string NewSession(policy::Policy p = policy::DefaultPolicy(),
                         policy::PromoteTarget target = policy::PromoteTarget::kLayer, std::string base = "/") {
    CreateSessionRequest req;
    req.base = std::move(base);
    req.policy = std::move(p);
    req.target = target;
    auto s = mgr_->CreateSession(req);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? s->record.id : "";
  }

  CommitResult MustCommit(const std::string& session, const std::string& cmd) {
    auto r = mgr_->Commit(session, cmd);
    EXPECT_TRUE(r.ok()) << cmd << ": " << r.error().ToString();
    return r.ok() ? *r : CommitResult{};
  }

  std::string dir_;
  std::unique_ptr<SessionManager> mgr_;
};

}  // namespace specula::core::testing
