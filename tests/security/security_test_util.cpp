#include "tests/security/security_test_util.h"

#include <sys/stat.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/spawn.h"

namespace specula::testing {

std::vector<std::string> RunOut::Lines(const std::string& prefix) const {
  std::vector<std::string> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) lines.push_back(line);
  }
  return lines;
}

std::string Sha256Of(const std::string& path) {
  auto r = Spawn(SpawnOptions{{"sha256sum", path}});
  if (!r.ok() || !r->success()) return "";
  return r->out.substr(0, 64);
}

std::string Dmesg() {
  auto r = Spawn(SpawnOptions{{"dmesg"}});
  return r.ok() ? r->out : "";
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

void SecurityTest::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "the security suite attacks a real speculad, which needs root";
  std::random_device rd;
  marker_ = "specula-attack-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
  canary_ = dir_.path() + "/canary";
  canary_text_ = "canary " + marker_ + "\n";
  std::ofstream(canary_) << canary_text_;
  binary_hash_ = Sha256Of(SPECULAD_PATH);
  ASSERT_FALSE(binary_hash_.empty());
  auto d = Daemon::Start(dir_.path());
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  daemon_ = std::move(*d);
  session_ = CreateSession();
}

void SecurityTest::TearDown() {
  if (!daemon_) return;
  // The host is unchanged, whatever the test did.
  EXPECT_EQ(Sha256Of(SPECULAD_PATH), binary_hash_) << "the runtime's binary was modified";
  std::ifstream in(canary_);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), canary_text_) << "the host canary file changed";
  EXPECT_EQ(Dmesg().find(marker_), std::string::npos) << "an attack wrote to the kernel log";
  // The daemon still answers on its own socket.
  auto pong = Call("daemon.ping", Json::object());
  EXPECT_TRUE(pong.ok()) << (pong.ok() ? "" : pong.error().ToString()) << "\n" << daemon_->Log();
  struct stat st {};
  EXPECT_EQ(::lstat(daemon_->socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

Result<Json> SecurityTest::Call(const std::string& method, const Json& params) {
  SPECULA_ASSIGN_OR_RETURN(auto c, rpc::Client::Connect(daemon_->socket()));
  return c.Call(method, params);
}

std::string SecurityTest::CreateSession(const std::string& policy_toml, const std::string& base,
                                        const std::string& target) {
  Json p = {{"base", base}, {"target", target}};
  if (!policy_toml.empty()) {
    static int n = 0;
    std::string path = dir_.path() + "/policy-" + std::to_string(n++) + ".toml";
    std::ofstream(path) << policy_toml;
    p["policy"] = path;
  }
  auto r = Call("session.create", p);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().ToString()) << "\n" << daemon_->Log();
  return r.ok() ? (*r)["session"].get<std::string>() : "";
}

Result<Json> SecurityTest::TryRun(const std::string& command, const std::string& session, int timeout_ms) {
  Json p = {{"session", session.empty() ? session_ : session}, {"command", command}};
  if (timeout_ms > 0) p["timeout_ms"] = timeout_ms;
  return Call("action.commit", p);
}

RunOut SecurityTest::Run(const std::string& command, const std::string& session, int timeout_ms) {
  RunOut o;
  auto r = TryRun(command, session, timeout_ms);
  EXPECT_TRUE(r.ok()) << command << ": " << (r.ok() ? "" : r.error().ToString()) << "\n" << daemon_->Log();
  if (!r.ok()) return o;
  o.raw = *r;
  o.exit_code = (*r)["exit_code"].get<int>();
  o.out = (*r)["stdout"].get<std::string>();
  o.err = (*r)["stderr"].get<std::string>();
  o.hit = (*r)["hit"].get<bool>();
  o.truncated = (*r)["truncated"].get<bool>();
  return o;
}

std::string SecurityTest::Spec(const std::string& command, const std::string& session) {
  auto r = Call("action.speculate", {{"session", session.empty() ? session_ : session}, {"command", command}});
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().ToString());
  return r.ok() ? (*r)["branch"].get<std::string>() : "";
}

void SecurityTest::Abort(const std::string& session) {
  auto r = Call("action.abort", {{"session", session.empty() ? session_ : session}});
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().ToString());
}

Json SecurityTest::WaitBranch(const std::string& branch, std::chrono::seconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  Json last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = Call("branch.show", {{"branch", branch}});
    if (!r.ok()) break;
    last = *r;
    std::string st = last.value("state", "");
    if (st != "starting" && st != "running") return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "branch " << branch << " did not finish: " << last.dump();
  return last;
}

std::string SecurityTest::Attack(const std::string& args) const {
  return "ATTACK_MARKER=" + marker_ + " " + SPECULA_ATTACK + " " + args;
}

void SecurityTest::ExpectAllBlocked(const RunOut& r, const std::string& what) {
  EXPECT_TRUE(r.Lines("ESCAPED").empty()) << what << ":\n" << r.out << r.err;
  EXPECT_FALSE(r.Lines("BLOCKED").empty()) << what << ": the attack did not run:\n" << r.out << r.err;
}

}  // namespace specula::testing
