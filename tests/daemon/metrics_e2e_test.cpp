// speculad's Prometheus metrics (--metrics-listen), scraped during real
// activity and read with a real parser of the text format: Debian's
// python3-prometheus-client (scripts/setup.sh installs it). The counters
// must add up to the sessions, speculations, commits and aborts the test
// made.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <regex>
#include <thread>

#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

constexpr const char* kDebianPython = "/usr/bin/python3";

// Parses the exposition with prometheus_client and prints it as JSON:
// {family: {"type", "help", "samples": [[name, labels, value], ...]}}.
constexpr const char* kParser = R"(
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "help": f.documentation,
                   "samples": [[s.name, s.labels, s.value if math.isfinite(s.value) else str(s.value)]
                               for s in f.samples]}
print(json.dumps(out))
)";

// One HTTP/1.0 exchange on a connected socket: the whole response.
std::string Exchange(int fd, const std::string& request, std::chrono::milliseconds wait) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return "";
  std::string response;
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return response;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return response;
    response.append(buf, static_cast<size_t>(n));
  }
}

std::string HttpUnix(const std::string& path, const std::string& target = "/metrics",
                     std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "";
  return Exchange(fd.get(), "GET " + target + " HTTP/1.0\r\nHost: localhost\r\n\r\n", wait);
}

std::string HttpTcp(uint16_t port, const std::string& target) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "";
  return Exchange(fd.get(), "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n", std::chrono::seconds(10));
}

// The body of a 200 response with the exposition's content type, "" else.
std::string Body(const std::string& response) {
  auto end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.0 200 OK\r\n", 0) != 0 || end == std::string::npos) return "";
  if (response.substr(0, end).find("Content-Type: text/plain; version=0.0.4") == std::string::npos) return "";
  return response.substr(end + 4);
}

// The exposition as prometheus_client reads it (a parse error fails).
Json Parse(const std::string& text) {
  SpawnOptions o;
  o.argv = {kDebianPython, "-c", kParser};
  o.stdin_data = text;
  o.output_cap = 16 << 20;
  auto r = Spawn(o);
  EXPECT_TRUE(r.ok() && r->success()) << (r.ok() ? r->err : r.error().ToString()) << "\n" << text;
  if (!r.ok() || !r->success()) return Json::object();
  return Json::parse(r->out);
}

// The value of the sample `name` with exactly `labels`, -1 when absent.
double Value(const Json& families, const std::string& name, const Json& labels = Json::object()) {
  for (const auto& [family, f] : families.items()) {
    for (const auto& s : f["samples"]) {
      if (s[0] == name && s[1] == labels && s[2].is_number()) return s[2].get<double>();
    }
  }
  return -1;
}

class MetricsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    SpawnOptions probe;
    probe.argv = {kDebianPython, "-c", "import prometheus_client"};
    auto r = Spawn(probe);
    if (!r.ok() || !r->success()) {
      GTEST_FAIL() << "python3-prometheus-client is missing: run scripts/setup.sh";
    }
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- speculad log ----\n" << daemon_->Log();
  }
  void StartWith(std::vector<std::string> extra) {
    auto d = Daemon::Start(dir_.path(), std::move(extra));
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
  }
  Json Call(const std::string& method, const Json& params) {
    auto c = rpc::Client::Connect(daemon_->socket());
    EXPECT_TRUE(c.ok());
    if (!c.ok()) return Json();
    auto r = c->Call(method, params, std::chrono::seconds(60));
    EXPECT_TRUE(r.ok()) << method << " " << params.dump() << ": " << r.error().ToString();
    return r.ok() ? *r : Json();
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(MetricsE2E, CountersAddUpToWhatTheClientsDid) {
  const std::string metrics = dir_.path() + "/metrics.sock";
  StartWith({"--metrics-listen", metrics});

  // Before any activity: every family is declared, and parses.
  std::string first = Body(HttpUnix(metrics));
  ASSERT_FALSE(first.empty()) << HttpUnix(metrics);
  Json empty = Parse(first);
  EXPECT_EQ(Value(empty, "specula_sessions"), 0);
  for (const char* f : {"specula_sessions", "specula_branches_live", "specula_branches_launched",
                        "specula_branches_promoted", "specula_branches_discarded", "specula_commit_hits",
                        "specula_commit_misses", "specula_commit_duration_seconds", "specula_fork_duration_seconds",
                        "specula_errors", "specula_checkpoint_process_images"}) {
    ASSERT_TRUE(empty.contains(f)) << f << "\n" << first;
    EXPECT_FALSE(empty[f]["help"].get<std::string>().empty()) << f;
  }
  EXPECT_EQ(empty["specula_commit_duration_seconds"]["type"], "histogram");
  EXPECT_EQ(empty["specula_branches_launched"]["type"], "counter");
  EXPECT_EQ(empty["specula_sessions"]["type"], "gauge");

  std::string s1 = Call("session.create", {{"name", "m1"}}).value("session", "");
  std::string s2 = Call("session.create", {{"name", "m2"}}).value("session", "");
  ASSERT_FALSE(s1.empty());
  ASSERT_FALSE(s2.empty());
  // A hit: the commit matches the speculated branch.
  Call("action.speculate", {{"session", s1}, {"command", "echo spec"}});
  EXPECT_EQ(Call("action.commit", {{"session", s1}, {"command", "echo spec"}}).value("hit", false), true);
  // A miss with nothing to discard.
  EXPECT_EQ(Call("action.commit", {{"session", s1}, {"command", "echo other"}}).value("hit", true), false);
  // Two discarded by an abort, one by a missing commit.
  Call("action.speculate", {{"session", s1}, {"command", "echo x"}});
  Call("action.speculate", {{"session", s1}, {"command", "echo y"}});
  EXPECT_EQ(Value(Parse(Body(HttpUnix(metrics))), "specula_branches_live"), 2);
  EXPECT_EQ(Call("action.abort", {{"session", s1}}).value("discarded", 0), 2);
  Call("action.speculate", {{"session", s1}, {"command", "echo z"}});
  EXPECT_EQ(Call("action.commit", {{"session", s1}, {"command", "echo w"}}).value("hit", true), false);
  // An error: a commit in a session that does not exist.
  {
    auto c = rpc::Client::Connect(daemon_->socket());
    ASSERT_TRUE(c.ok());
    auto r = c->Call("action.commit", {{"session", "no-such-session"}, {"command", "true"}});
    ASSERT_FALSE(r.ok());
  }

  // During a commit that runs for a while: the scrape is answered at once
  // (its own thread) and sees the commit running.
  std::thread slow([&] { Call("action.commit", {{"session", s2}, {"command", "sleep 3; echo slept"}}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto start = std::chrono::steady_clock::now();
  std::string during = Body(HttpUnix(metrics, "/metrics", std::chrono::seconds(2)));
  auto took = std::chrono::steady_clock::now() - start;
  slow.join();
  ASSERT_FALSE(during.empty());
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  Json mid = Parse(during);
  EXPECT_EQ(Value(mid, "specula_commits_running"), 1) << during;
  EXPECT_EQ(Value(mid, "specula_commit_misses_total", {{"session", s2}}), -1) << "counted before it finished";

  Json m = Parse(Body(HttpUnix(metrics)));
  EXPECT_EQ(Value(m, "specula_sessions"), 2);
  EXPECT_EQ(Value(m, "specula_branches_live"), 0);
  EXPECT_EQ(Value(m, "specula_commits_running"), 0);
  EXPECT_EQ(Value(m, "specula_branches_launched_total"), 4);
  EXPECT_EQ(Value(m, "specula_branches_promoted_total"), 1);
  EXPECT_EQ(Value(m, "specula_branches_discarded_total"), 3);
  EXPECT_EQ(Value(m, "specula_commit_hits_total", {{"session", s1}}), 1);
  EXPECT_EQ(Value(m, "specula_commit_misses_total", {{"session", s1}}), 2);
  EXPECT_EQ(Value(m, "specula_commit_misses_total", {{"session", s2}}), 1);
  EXPECT_EQ(Value(m, "specula_commit_duration_seconds_count", {{"result", "hit"}}), 1);
  EXPECT_EQ(Value(m, "specula_commit_duration_seconds_count", {{"result", "miss"}}), 3);
  EXPECT_EQ(Value(m, "specula_commit_duration_seconds_bucket", {{"result", "miss"}, {"le", "+Inf"}}), 3);
  // The slow commit took its 3 s: above the 2.5 s bucket's bound.
  EXPECT_LE(Value(m, "specula_commit_duration_seconds_bucket", {{"result", "miss"}, {"le", "2.5"}}), 2);
  EXPECT_GE(Value(m, "specula_commit_duration_seconds_sum", {{"result", "miss"}}), 3.0);
  EXPECT_EQ(Value(m, "specula_fork_duration_seconds_count"), 4);
  EXPECT_GT(Value(m, "specula_fork_duration_seconds_sum"), 0);
  EXPECT_EQ(Value(m, "specula_errors_total", {{"method", "action.commit"}, {"code", "not_found"}}), 1);
  EXPECT_GE(Value(m, "specula_speculation_saved_seconds_total"), 0);

  // A destroyed session's series go with it.
  Call("session.destroy", {{"session", s2}});
  Json after = Parse(Body(HttpUnix(metrics)));
  EXPECT_EQ(Value(after, "specula_sessions"), 1);
  EXPECT_EQ(Value(after, "specula_commit_misses_total", {{"session", s2}}), -1);
  EXPECT_EQ(Value(after, "specula_commit_misses_total", {{"session", s1}}), 2);

  // The endpoint's socket goes with the daemon.
  EXPECT_EQ(daemon_->Terminate(), 0);
  EXPECT_NE(::access(metrics.c_str(), F_OK), 0) << "metrics socket left behind";
}

// CRIU's work is counted where it happens (the core's driver) and read at
// scrape time: a commit that leaves a process behind is one dump, a branch
// of that head one restore, its promotion (a hit, the process still alive)
// a second dump; the dumped bytes are the images the checkpoints keep.
// Without the warm pool, whose fills restore too (the next test).
TEST_F(MetricsE2E, CriuDumpsAndRestoresAreCountedWithTheirBytes) {
  const std::string metrics = dir_.path() + "/metrics.sock";
  StartWith({"--metrics-listen", metrics, "--pool-per-session", "0"});
  Json zero = Parse(Body(HttpUnix(metrics)));
  EXPECT_EQ(zero["specula_criu_calls"]["type"], "counter") << zero.dump();
  EXPECT_EQ(Value(zero, "specula_criu_calls_total", {{"op", "dump"}, {"result", "ok"}}), 0);
  EXPECT_EQ(Value(zero, "specula_criu_calls_total", {{"op", "restore"}, {"result", "ok"}}), 0);

  std::string s = Call("session.create", {{"name", "criu"}}).value("session", "");
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(Call("action.commit", {{"session", s}, {"command", "sleep 1000 & echo started"}}).value("exit_code", -1),
            0);
  Call("action.speculate", {{"session", s}, {"command", "echo again"}});
  EXPECT_EQ(Call("action.commit", {{"session", s}, {"command", "echo again"}}).value("hit", false), true);

  Json m = Parse(Body(HttpUnix(metrics)));
  EXPECT_EQ(Value(m, "specula_criu_calls_total", {{"op", "dump"}, {"result", "ok"}}), 2) << m.dump();
  EXPECT_EQ(Value(m, "specula_criu_calls_total", {{"op", "dump"}, {"result", "failed"}}), 0);
  EXPECT_EQ(Value(m, "specula_criu_calls_total", {{"op", "restore"}, {"result", "ok"}}), 1);
  EXPECT_EQ(Value(m, "specula_criu_calls_total", {{"op", "restore"}, {"result", "failed"}}), 0);
  double dumped = Value(m, "specula_criu_bytes_total", {{"op", "dump"}});
  EXPECT_GT(dumped, 0);
  EXPECT_EQ(dumped, Value(m, "specula_checkpoint_process_image_bytes")) << "both images are kept";
  // The restore read the first checkpoint's image.
  EXPECT_GT(Value(m, "specula_criu_bytes_total", {{"op", "restore"}}), 0);
  EXPECT_LT(Value(m, "specula_criu_bytes_total", {{"op", "restore"}}), dumped);
  EXPECT_GT(Value(m, "specula_criu_seconds_total", {{"op", "dump"}}), 0);
  EXPECT_GT(Value(m, "specula_criu_seconds_total", {{"op", "restore"}}), 0);
  Call("session.destroy", {{"session", s}});
}

// The warm pool: a session's head gets a sandbox prepared in the background
// (a CRIU restore when the head has processes), a speculate takes it, and
// the pool is filled again for the same head.
TEST_F(MetricsE2E, WarmPoolSandboxesAndTakesAreCounted) {
  const std::string metrics = dir_.path() + "/metrics.sock";
  StartWith({"--metrics-listen", metrics, "--pool-per-session", "1"});
  auto ready = [&] {
    // Bounded only so a broken build cannot hang; not a timing assertion.
    for (int i = 0; i < 500; ++i) {
      Json m = Parse(Body(HttpUnix(metrics)));
      if (Value(m, "specula_pool_sandboxes", {{"state", "ready"}}) == 1) return m;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Json();
  };
  std::string s = Call("session.create", {{"name", "pool"}}).value("session", "");
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(Call("action.commit", {{"session", s}, {"command", "sleep 1000 & echo started"}}).value("exit_code", -1),
            0);
  Json before = ready();
  ASSERT_FALSE(before.is_null()) << "no warm sandbox for the new head";
  EXPECT_EQ(Value(before, "specula_pool_sandboxes", {{"state", "filling"}}), 0);
  // Its CRIU restore was done by the fill, before anyone asked.
  EXPECT_EQ(Value(before, "specula_criu_calls_total", {{"op", "restore"}, {"result", "ok"}}), 1);
  const double hits = Value(before, "specula_pool_takes_total", {{"result", "hit"}});
  Call("action.speculate", {{"session", s}, {"command", "echo again"}});
  Json after = ready();  // taken, and filled again for the same head
  ASSERT_FALSE(after.is_null());
  EXPECT_EQ(Value(after, "specula_pool_takes_total", {{"result", "hit"}}), hits + 1);
  EXPECT_EQ(Value(after, "specula_criu_calls_total", {{"op", "restore"}, {"result", "ok"}}), 2);
  Json r = Call("action.commit", {{"session", s}, {"command", "echo again"}});
  EXPECT_EQ(r.value("hit", false), true) << r.dump();
  EXPECT_EQ(r.value("stdout", ""), "again\n");
  Call("session.destroy", {{"session", s}});
  Json gone = Parse(Body(HttpUnix(metrics)));
  EXPECT_EQ(Value(gone, "specula_pool_sandboxes", {{"state", "ready"}}), 0) << "a destroyed session's pool stays";
}

// The sum of a sample over its series (all label sets), 0 when absent.
double Total(const Json& families, const std::string& name) {
  double sum = 0;
  for (const auto& [family, f] : families.items()) {
    for (const auto& s : f["samples"]) {
      if (s[0] == name && s[2].is_number()) sum += s[2].get<double>();
    }
  }
  return sum;
}

TEST_F(MetricsE2E, ScrapedDuringABenchTheCountersMatchItsReport) {
  const std::string metrics = dir_.path() + "/metrics.sock";
  StartWith({"--metrics-listen", metrics});
  // One trajectory, k = 1: speculation off, the built-in speculator and the
  // synthetic oracle, each in fresh sessions of this daemon (docs/agents.md).
  std::atomic<bool> done{false};
  SpawnResult bench;
  std::thread runner([&] {
    bench = RunCli(daemon_->socket(), {"bench", "--only", "build-c-hello", "--k", "1", "--json"});
    done = true;
  });
  std::vector<std::string> scrapes;
  while (!done) {
    std::string body = Body(HttpUnix(metrics));
    EXPECT_FALSE(body.empty());
    scrapes.push_back(std::move(body));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  runner.join();
  ASSERT_EQ(bench.exit_code, 0) << bench.out << bench.err;
  Json report = Json::parse(bench.out, nullptr, false);
  ASSERT_TRUE(report.is_object() && report.contains("overall")) << bench.out;

  // Every scrape parses, and no counter goes back.
  const char* counters[] = {"specula_branches_launched_total", "specula_branches_promoted_total",
                            "specula_branches_discarded_total", "specula_commit_duration_seconds_count",
                            "specula_fork_duration_seconds_count"};
  std::map<std::string, double> last;
  int mid_activity = 0;
  for (const auto& text : scrapes) {
    Json m = Parse(text);
    for (const char* c : counters) {
      double v = Total(m, c);
      EXPECT_GE(v, last[c]) << c << " went back";
      last[c] = v;
    }
    if (Total(m, "specula_commit_duration_seconds_count") > 0 && Value(m, "specula_sessions") > 0) ++mid_activity;
  }
  EXPECT_GE(mid_activity, 2) << "no scrape saw the bench at work (" << scrapes.size() << " scrapes)";

  Json m = Parse(Body(HttpUnix(metrics)));
  double hits = 0, branches = 0, steps = 0;
  for (const auto& run : report["overall"]) {
    hits += run.value("hits", 0.0);
    branches += run.value("branches", 0.0);
    steps += run.value("steps", 0.0);
  }
  EXPECT_GT(branches, 0);
  EXPECT_GT(hits, 0) << "the oracle p=0.5 run hits";
  EXPECT_EQ(Value(m, "specula_branches_launched_total"), branches);
  EXPECT_EQ(Value(m, "specula_branches_promoted_total"), hits);
  EXPECT_EQ(Value(m, "specula_commit_duration_seconds_count", {{"result", "hit"}}), hits);
  // Every step is a commit (the bench adds its digest commits).
  EXPECT_GE(Total(m, "specula_commit_duration_seconds_count"), steps);
  // The bench cleaned up: every launched branch was promoted or discarded.
  EXPECT_EQ(Value(m, "specula_sessions"), 0);
  EXPECT_EQ(Value(m, "specula_branches_live"), 0);
  EXPECT_EQ(Value(m, "specula_branches_launched_total"),
            Value(m, "specula_branches_promoted_total") + Value(m, "specula_branches_discarded_total"));
  EXPECT_EQ(Value(m, "specula_errors_total"), -1) << "the bench's calls failed";
}

TEST_F(MetricsE2E, ServesTcpOnThePortItReportsAndOnlyMetrics) {
  StartWith({"--metrics-listen", "127.0.0.1:0"});
  std::smatch match;
  std::string log = daemon_->Log();
  ASSERT_TRUE(std::regex_search(log, match, std::regex(R"(metrics: http://127\.0\.0\.1:([0-9]+)/metrics)"))) << log;
  uint16_t port = static_cast<uint16_t>(std::stoi(match[1].str()));
  std::string body = Body(HttpTcp(port, "/metrics"));
  ASSERT_FALSE(body.empty());
  EXPECT_NE(body.find("# TYPE specula_sessions gauge\n"), std::string::npos) << body;
  EXPECT_EQ(Value(Parse(body), "specula_sessions"), 0);
  EXPECT_EQ(HttpTcp(port, "/").rfind("HTTP/1.0 404", 0), 0u);
  // A second daemon asking for the same port cannot serve: exit 69.
  std::string log2;
  int status = RunDaemonToExit(dir_.path(), {"--socket", dir_.path() + "/two.sock", "--state-dir",
                                             dir_.path() + "/two-state", "--metrics-listen",
                                             "127.0.0.1:" + std::to_string(port)},
                               &log2);
  EXPECT_EQ(status, 69) << log2;
  EXPECT_NE(log2.find("Address already in use"), std::string::npos) << log2;
}

TEST_F(MetricsE2E, OffByDefaultAndABadAddressIsABadFlag) {
  StartWith({});
  EXPECT_EQ(daemon_->Log().find("metrics:"), std::string::npos) << daemon_->Log();
  daemon_.reset();
  std::string log;
  int status = RunDaemonToExit(dir_.path(), {"--socket", dir_.path() + "/bad.sock", "--state-dir",
                                             dir_.path() + "/bad-state", "--metrics-listen", "no-port-here"},
                               &log);
  EXPECT_EQ(status, 2) << log;
  EXPECT_NE(log.find("--metrics-listen \"no-port-here\""), std::string::npos) << log;
}

}  // namespace
}  // namespace specula::testing
