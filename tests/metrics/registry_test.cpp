#include "runtime/metrics/registry.h"

#include <gtest/gtest.h>

#include "runtime/metrics/endpoint.h"

namespace specula::metrics {
namespace {

TEST(Registry, RendersHelpTypeAndSortedSeries) {
  Registry r;
  Counter& c = r.AddCounter("t_commits_total", "Commits.\nSecond line \\ here.", {"session"});
  Gauge& g = r.AddGauge("t_sessions", "Sessions.");
  c.Inc({"b"});
  c.Inc({"a"}, 2);
  c.Inc({"we\"ird\\\n"});
  g.Set({}, 3);
  EXPECT_EQ(r.Scrape(),
            "# HELP t_commits_total Commits.\\nSecond line \\\\ here.\n"
            "# TYPE t_commits_total counter\n"
            "t_commits_total{session=\"a\"} 2\n"
            "t_commits_total{session=\"b\"} 1\n"
            "t_commits_total{session=\"we\\\"ird\\\\\\n\"} 1\n"
            "# HELP t_sessions Sessions.\n"
            "# TYPE t_sessions gauge\n"
            "t_sessions 3\n");
  c.Remove({"a"});
  EXPECT_EQ(r.Scrape().find("session=\"a\""), std::string::npos);
}

TEST(Registry, HistogramBucketsAreCumulative) {
  Registry r;
  Histogram& h = r.AddHistogram("t_seconds", "Latency.", {"result"}, {0.1, 1});
  h.Observe({"hit"}, 0.05);
  h.Observe({"hit"}, 0.5);
  h.Observe({"hit"}, 7);
  EXPECT_EQ(r.Scrape(),
            "# HELP t_seconds Latency.\n"
            "# TYPE t_seconds histogram\n"
            "t_seconds_bucket{result=\"hit\",le=\"0.10000000000000001\"} 1\n"
            "t_seconds_bucket{result=\"hit\",le=\"1\"} 2\n"
            "t_seconds_bucket{result=\"hit\",le=\"+Inf\"} 3\n"
            "t_seconds_sum{result=\"hit\"} 7.5499999999999998\n"
            "t_seconds_count{result=\"hit\"} 3\n");
}

TEST(Registry, CollectorsRunAtEveryScrape) {
  Registry r;
  Gauge& g = r.AddGauge("t_live", "Live.");
  int scrapes = 0;
  r.AddCollector([&] { g.Set({}, ++scrapes); });
  EXPECT_NE(r.Scrape().find("t_live 1\n"), std::string::npos);
  EXPECT_NE(r.Scrape().find("t_live 2\n"), std::string::npos);
}

TEST(Registry, FormatsSpecialValues) {
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(0.25), "0.25");
}

TEST(HttpResponse, OnlyGetMetrics) {
  auto render = [] { return std::string("x 1\n"); };
  std::string ok = HttpResponse("GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n", render);
  EXPECT_EQ(ok.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(ok.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_EQ(ok.substr(ok.size() - 4), "x 1\n");
  EXPECT_NE(HttpResponse("GET /metrics?x=1 HTTP/1.0\r\n\r\n", render).find("200 OK"), std::string::npos);
  std::string head = HttpResponse("HEAD /metrics HTTP/1.0\r\n\r\n", render);
  EXPECT_NE(head.find("200 OK"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
  EXPECT_EQ(HttpResponse("GET / HTTP/1.0\r\n\r\n", render).rfind("HTTP/1.0 404", 0), 0u);
  EXPECT_EQ(HttpResponse("POST /metrics HTTP/1.0\r\n\r\n", render).rfind("HTTP/1.0 405", 0), 0u);
  EXPECT_EQ(HttpResponse("hello\r\n\r\n", render).rfind("HTTP/1.0 400", 0), 0u);
}

TEST(Endpoint, RefusesAnAddressWithoutPort) {
  auto e = Endpoint::Start("localhost", [] { return std::string(); });
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Code::kInvalidArgument);
  EXPECT_NE(e.error().message().find("--metrics-listen"), std::string::npos);
}

}  // namespace
}  // namespace specula::metrics
