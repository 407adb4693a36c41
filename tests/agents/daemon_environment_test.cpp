// The daemon client against a fake speculad on a Unix socket in a temp dir:
// the JSON-RPC framing, the method names and params of the protocol, result
// parsing, and error replies.
#include "agents/daemon_environment.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/unique_fd.h"

namespace specula::agents {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// Answers each request line with handler(method, params) -> result or
// {"__error": {...}} for an error reply. Records the methods it saw.
class FakeDaemon {
 public:
  using Handler = std::function<Json(const std::string&, const Json&)>;
  explicit FakeDaemon(Handler h) : handler_(std::move(h)) {
    dir_ = std::filesystem::temp_directory_path() / ("agents-fake-daemon-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "s.sock").string();
    listen_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_.get(), 4), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeDaemon() {
    stop_ = true;
    thread_.join();
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> methods() {
    std::lock_guard l(mu_);
    return methods_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      std::string buf;
      char tmp[4096];
      while (!stop_) {
        pollfd q{c.get(), POLLIN, 0};
        if (::poll(&q, 1, 20) <= 0) continue;
        ssize_t k = ::recv(c.get(), tmp, sizeof tmp, 0);
        if (k <= 0) break;
        buf.append(tmp, static_cast<size_t>(k));
        size_t nl;
        while ((nl = buf.find('\n')) != std::string::npos) {
          Json req = Json::parse(buf.substr(0, nl));
          buf.erase(0, nl + 1);
          EXPECT_EQ(req["jsonrpc"], "2.0");
          std::string method = req["method"];
          {
            std::lock_guard l(mu_);
            methods_.push_back(method);
          }
          Json result = handler_(method, req["params"]);
          // A notification for someone else first: the client must skip it.
          std::string out = Json({{"jsonrpc", "2.0"}, {"method", "event"}, {"params", {}}}).dump() + "\n";
          Json reply = {{"jsonrpc", "2.0"}, {"id", req["id"]}};
          if (result.is_object() && result.contains("__error")) {
            reply["error"] = result["__error"];
          } else {
            reply["result"] = result;
          }
          out += reply.dump() + "\n";
          (void)!::send(c.get(), out.data(), out.size(), MSG_NOSIGNAL);
        }
      }
    }
  }

  Handler handler_;
  std::filesystem::path dir_;
  std::string path_;
  UniqueFd listen_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> methods_;
  std::thread thread_;
};

Json Handle(const std::string& method, const Json& p) {
  if (method == "session.create") {
    EXPECT_EQ(p["base"], "/");
    EXPECT_EQ(p["policy"], "/etc/specula/bench.toml");
    return {{"session", "s1"}, {"head", "c0"}};
  }
  EXPECT_TRUE(method == "branch.show" || p["session"] == "s1") << method;
  if (method == "action.speculate") return {{"branch", 7}};  // numeric ids are echoed back as sent
  if (method == "branch.show") {
    EXPECT_EQ(p["branch"], 7);
    return {{"state", "done"},
            {"result", {{"exit_code", 0}, {"stdout", "hi\n"}, {"stderr", ""}, {"duration_ms", 12.5}}}};
  }
  if (method == "action.commit") {
    if (p["command"] == "boom") {
      return {{"__error", {{"code", -32004}, {"message", "branch limit"},
                           {"data", {{"kind", "failed_precondition"}, {"errno", 0}, {"hint", "wait"}}}}}};
    }
    EXPECT_EQ(p["timeout_ms"], 5000);
    return {{"hit", true}, {"branch", 7}, {"exit_code", 0}, {"signal", 0}, {"stdout", "hi\n"},
            {"stderr", ""}, {"truncated", false}, {"duration_ms", 12.5}, {"saved_ms", 12.0},
            {"head", "c1"}, {"lossy_effects", {{{"tag", "apt-cache"}, {"path", "/var/cache/apt"}}}},
            {"flags", {"nondeterministic_input"}}};
  }
  if (method == "action.abort" || method == "session.destroy") return Json::object();
  return {{"__error", {{"code", -32601}, {"message", "no such method"}}}};
}

TEST(DaemonEnvironmentTest, SpeaksTheProtocol) {
  FakeDaemon daemon(Handle);
  {
    DaemonEnvironmentOptions o;
    o.socket_path = daemon.path();
    o.policy = "/etc/specula/bench.toml";
    o.name = "t";
    auto env = DaemonEnvironment::Create(o);
    ASSERT_TRUE(env.ok()) << env.error().ToString();
    EXPECT_EQ((*env)->session(), "s1");
    EXPECT_EQ((*env)->head(), "c0");
    auto b = (*env)->Speculate("echo hi", 5000ms);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(*b, "7");
    auto peek = (*env)->PeekBranch(*b);
    ASSERT_TRUE(peek.ok()) << peek.error().ToString();
    ASSERT_TRUE(peek->has_value());
    EXPECT_EQ((*peek)->stdout_text, "hi\n");
    EXPECT_DOUBLE_EQ((*peek)->duration_ms, 12.5);
    auto c = (*env)->Commit("echo hi", 5000ms);
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    EXPECT_TRUE(c->hit);
    EXPECT_EQ(c->branch, "7");
    EXPECT_EQ(c->outcome.stdout_text, "hi\n");
    EXPECT_DOUBLE_EQ(c->saved_ms, 12.0);
    EXPECT_EQ((*env)->head(), "c1");
    ASSERT_EQ(c->lossy_effects.size(), 1u);
    EXPECT_EQ(c->lossy_effects[0].tag, "apt-cache");
    EXPECT_EQ(c->lossy_effects[0].path, "/var/cache/apt");
    EXPECT_EQ(c->flags, std::vector<std::string>{"nondeterministic_input"});
    auto err = (*env)->Commit("boom", 5000ms);
    ASSERT_FALSE(err.ok());
    EXPECT_EQ(err.error().code(), Code::kFailedPrecondition);
    EXPECT_EQ(err.error().hint(), "wait");
    EXPECT_NE(err.error().message().find("branch limit"), std::string::npos);
    EXPECT_TRUE((*env)->Abort().ok());
  }
  auto m = daemon.methods();
  std::vector<std::string> want = {"session.create", "action.speculate", "branch.show", "action.commit",
                                   "action.commit", "action.abort", "session.destroy"};
  EXPECT_EQ(m, want);
}

TEST(DaemonEnvironmentTest, BranchResultWithoutOutputTextCannotFeedAPrelaunch) {
  FakeDaemon daemon([](const std::string& method, const Json& p) -> Json {
    if (method == "session.create") return {{"session", "s2"}, {"head", "c0"}};
    if (method == "action.speculate") return {{"branch", p["command"] == "quiet" ? "bq" : "bl"}};
    if (method == "branch.show") {
      bool quiet = p["branch"] == "bq";
      return {{"state", "done"},
              {"result", {{"exit_code", 0}, {"stdout_bytes", quiet ? 0 : 5}, {"stderr_bytes", 0},
                          {"duration_ms", 3}}}};
    }
    return Json::object();
  });
  DaemonEnvironmentOptions o;
  o.socket_path = daemon.path();
  auto env = DaemonEnvironment::Create(o);
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  auto loud = (*env)->Speculate("echo hello", 1000ms);
  auto quiet = (*env)->Speculate("quiet", 1000ms);
  ASSERT_TRUE(loud.ok() && quiet.ok());
  auto pl = (*env)->PeekBranch(*loud);
  ASSERT_FALSE(pl.ok());
  EXPECT_EQ(pl.error().code(), Code::kUnavailable);
  auto pq = (*env)->PeekBranch(*quiet);
  ASSERT_TRUE(pq.ok()) << pq.error().ToString();
  ASSERT_TRUE(pq->has_value());
  EXPECT_EQ((*pq)->stdout_text, "");
}

TEST(DaemonEnvironmentTest, MissingDaemonIsAnErrorWithAHint) {
  DaemonEnvironmentOptions o;
  o.socket_path = "/nonexistent/speculad.sock";
  auto env = DaemonEnvironment::Create(o);
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.error().code(), Code::kNotFound);
  EXPECT_FALSE(env.error().hint().empty());
}

TEST(DaemonEnvironmentTest, ParseCommitResultToleratesMissingFields) {
  auto c = ParseCommitResult(Json{{"hit", false}, {"exit_code", 3}});
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->hit);
  EXPECT_EQ(c->outcome.exit_code, 3);
  EXPECT_FALSE(ParseCommitResult(Json{{"hit", "yes"}}).ok());
  EXPECT_FALSE(ParseCommitResult(Json::array()).ok());
}

}  // namespace
}  // namespace specula::agents
