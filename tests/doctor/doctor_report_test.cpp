// The report's logic and its two renderings, on hand-made reports: no probe runs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/doctor/doctor.h"

namespace specula {
namespace {

DoctorCheck Check(std::string name, CheckStatus status, bool required, std::string action = "") {
  return DoctorCheck{std::move(name), status, required, "seen", std::move(action), {}};
}

TEST(DoctorReportTest, OkUnlessARequiredCheckIsMissing) {
  DoctorReport r;
  r.checks = {Check("a", CheckStatus::kOk, true), Check("b", CheckStatus::kDegraded, false, "x"),
              Check("c", CheckStatus::kMissing, false, "y")};
  EXPECT_TRUE(r.ok());
  r.checks.push_back(Check("d", CheckStatus::kMissing, true, "z"));
  EXPECT_FALSE(r.ok());
}

TEST(DoctorReportTest, FindByName) {
  DoctorReport r;
  r.checks = {Check("kernel", CheckStatus::kOk, true)};
  ASSERT_NE(r.Find("kernel"), nullptr);
  EXPECT_EQ(r.Find("kernel")->name, "kernel");
  EXPECT_EQ(r.Find("nope"), nullptr);
}

TEST(DoctorReportTest, StatusNames) {
  EXPECT_EQ(CheckStatusName(CheckStatus::kOk), "ok");
  EXPECT_EQ(CheckStatusName(CheckStatus::kDegraded), "degraded");
  EXPECT_EQ(CheckStatusName(CheckStatus::kMissing), "missing");
}

TEST(DoctorReportTest, TableShowsActionsOnlyForChecksNotOk) {
  DoctorReport r;
  r.checks = {Check("first.check", CheckStatus::kOk, true, "never shown"),
              Check("second", CheckStatus::kMissing, true, "install it")};
  std::string t = FormatDoctorTable(r);
  EXPECT_NE(t.find("CHECK"), std::string::npos);
  EXPECT_NE(t.find("first.check"), std::string::npos);
  EXPECT_EQ(t.find("never shown"), std::string::npos);
  EXPECT_NE(t.find("-> install it"), std::string::npos);
  EXPECT_NE(t.find("cannot run here: 1 required check is missing"), std::string::npos) << t;
}

TEST(DoctorReportTest, TableMarksOptionalChecks) {
  DoctorReport r;
  r.checks = {Check("ebpf.lsm", CheckStatus::kDegraded, false, "nothing to do")};
  std::string t = FormatDoctorTable(r);
  EXPECT_NE(t.find("[optional]"), std::string::npos);
  EXPECT_NE(t.find("specula can run here"), std::string::npos) << t;
}

TEST(DoctorReportTest, JsonHasOneObjectPerCheck) {
  DoctorReport r;
  r.checks = {Check("a", CheckStatus::kOk, true), Check("b", CheckStatus::kMissing, true, "fix")};
  nlohmann::json j = DoctorJson(r);
  EXPECT_EQ(j["ok"], false);
  ASSERT_EQ(j["checks"].size(), 2u);
  EXPECT_EQ(j["checks"][1]["name"], "b");
  EXPECT_EQ(j["checks"][1]["status"], "missing");
  EXPECT_EQ(j["checks"][1]["required"], true);
  EXPECT_EQ(j["checks"][1]["action"], "fix");
  EXPECT_EQ(j["checks"][1]["reason"], "seen");
}

}  // namespace
}  // namespace specula
