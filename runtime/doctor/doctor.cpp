#include "runtime/doctor/doctor.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include <spdlog/spdlog.h>

#include "runtime/doctor/checks.h"

namespace specula {

namespace doctor {

DoctorCheck Ok(std::string name, std::string reason, bool required) {
  return DoctorCheck{std::move(name), CheckStatus::kOk, required, std::move(reason), "", {}};
}

DoctorCheck Degraded(std::string name, std::string reason, std::string action, bool required) {
  return DoctorCheck{std::move(name), CheckStatus::kDegraded, required, std::move(reason),
                     std::move(action), {}};
}

DoctorCheck Missing(std::string name, std::string reason, std::string action, bool required) {
  return DoctorCheck{std::move(name), CheckStatus::kMissing, required, std::move(reason),
                     std::move(action), {}};
}

}  // namespace doctor

std::string_view CheckStatusName(CheckStatus status) {
  switch (status) {
    case CheckStatus::kOk: return "ok";
    case CheckStatus::kDegraded: return "degraded";
    case CheckStatus::kMissing: return "missing";
  }
  return "missing";
}

bool DoctorReport::ok() const {
  return std::none_of(checks.begin(), checks.end(), [](const DoctorCheck& c) {
    return c.required && c.status == CheckStatus::kMissing;
  });
}

const DoctorCheck* DoctorReport::Find(std::string_view name) const {
  for (const auto& c : checks) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

DoctorReport RunDoctor(const DoctorOptions& options) {
  auto start = std::chrono::steady_clock::now();
  DoctorReport report;
  auto append = [&](std::vector<DoctorCheck> part) {
    for (auto& c : part) report.checks.push_back(std::move(c));
  };
  append(doctor::SandboxChecks(options));
  append(doctor::EbpfChecks());
  append(doctor::CriuChecks(options));
  append(doctor::StoreChecks(options));
  report.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  for (const auto& c : report.checks) {
    if (c.status != CheckStatus::kOk) {
      spdlog::debug("doctor: {} {}: {}", c.name, CheckStatusName(c.status), c.reason);
    }
  }
  return report;
}

std::string FormatDoctorTable(const DoctorReport& report) {
  size_t name_w = 5;  // "CHECK"
  for (const auto& c : report.checks) name_w = std::max(name_w, c.name.size());
  constexpr size_t kStatusW = 8;  // "degraded"
  std::ostringstream out;
  auto pad = [](std::string_view s, size_t w) {
    std::string r(s);
    r.resize(std::max(w, s.size()), ' ');
    return r;
  };
  out << pad("CHECK", name_w) << "  " << pad("STATUS", kStatusW) << "  REASON\n";
  int ok = 0, degraded = 0, missing = 0, missing_required = 0;
  for (const auto& c : report.checks) {
    out << pad(c.name, name_w) << "  " << pad(CheckStatusName(c.status), kStatusW) << "  "
        << c.reason << (c.required ? "" : " [optional]") << "\n";
    if (c.status != CheckStatus::kOk && !c.action.empty()) {
      out << std::string(name_w + kStatusW + 4, ' ') << "-> " << c.action << "\n";
    }
    switch (c.status) {
      case CheckStatus::kOk: ++ok; break;
      case CheckStatus::kDegraded: ++degraded; break;
      case CheckStatus::kMissing:
        ++missing;
        if (c.required) ++missing_required;
        break;
    }
  }
  out << report.checks.size() << " checks in " << report.duration.count() << " ms: " << ok
      << " ok, " << degraded << " degraded, " << missing << " missing. ";
  if (missing_required == 0) {
    out << "specula can run here.\n";
  } else {
    out << "specula cannot run here: " << missing_required << " required check"
        << (missing_required == 1 ? " is" : "s are") << " missing.\n";
  }
  return out.str();
}

nlohmann::json DoctorJson(const DoctorReport& report) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& c : report.checks) {
    checks.push_back({{"name", c.name},
                      {"status", std::string(CheckStatusName(c.status))},
                      {"required", c.required},
                      {"reason", c.reason},
                      {"action", c.action},
                      {"duration_ms", c.duration.count()}});
  }
  return {{"ok", report.ok()}, {"duration_ms", report.duration.count()}, {"checks", checks}};
}

int DoctorCommand(bool json, std::ostream& out) {
  DoctorReport report = RunDoctor(DoctorOptions{});
  if (json) {
    // Reasons quote tools' and the kernel's words, which need not be UTF-8.
    out << DoctorJson(report).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  } else {
    out << FormatDoctorTable(report);
  }
  return report.ok() ? 0 : 1;
}

}  // namespace specula
