// The security suite's fixture: a real speculad on a private socket and
// state dir, one session over the host's / (the default a user gets), and
// the attacker program (tests/security/attack.c) run inside branches.
// Every test asserts that its attack failed AND that the host is unchanged:
// TearDown compares the daemon binary's hash, dmesg (no marker line), a
// canary file, and checks that the daemon still answers and still holds
// its socket. Each test names the CVE or class of attack it stands for.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"

namespace specula::testing {

struct RunOut {
  int exit_code = -1;
  std::string out, err;
  bool hit = false;
  bool truncated = false;
  Json raw;
  // Lines of the attacker's output starting with `prefix` (e.g. "ESCAPED").
  std::vector<std::string> Lines(const std::string& prefix) const;
  bool Has(const std::string& needle) const { return out.find(needle) != std::string::npos; }
};

std::string Sha256Of(const std::string& path);
std::string Dmesg();
std::string ShellQuote(const std::string& s);

class SecurityTest : public ::testing::Test {
 public:
  void SetUp() override;
  void TearDown() override;

  // Session with `policy_toml` (written to a file) or the default policy.
  std::string CreateSession(const std::string& policy_toml = "", const std::string& base = "/",
                            const std::string& target = "layer");
  Result<Json> Call(const std::string& method, const Json& params);
  // action.commit in `session` (default: the fixture's); fails the test on an RPC error.
  RunOut Run(const std::string& command, const std::string& session = "", int timeout_ms = 0);
  Result<Json> TryRun(const std::string& command, const std::string& session = "", int timeout_ms = 0);
  std::string Spec(const std::string& command, const std::string& session = "");
  void Abort(const std::string& session = "");
  // branch.show once the branch's action has ended (or after `wait`).
  Json WaitBranch(const std::string& branch, std::chrono::seconds wait = std::chrono::seconds(60));
  // The attacker with arguments, as a shell word list.
  std::string Attack(const std::string& args) const;
  // A line unique to this test for kernel-log and canary checks.
  const std::string& marker() const { return marker_; }
  // Expect no ESCAPED line and at least one BLOCKED line.
  static void ExpectAllBlocked(const RunOut& r, const std::string& what);

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::string session_;
  std::string marker_;
  std::string canary_;         // a host file no branch may change
  std::string canary_text_;
  std::string binary_hash_;    // speculad's sha256 before the test
  std::string dmesg_before_;
};

}  // namespace specula::testing
