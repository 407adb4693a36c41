#include "speculators/cascade.h"

#include <algorithm>

namespace specula::speculators {

CascadeSpeculator::CascadeSpeculator(std::unique_ptr<Speculator> fast, std::unique_ptr<ModelSpeculator> model,
                                     CascadeOptions options)
    : fast_(std::move(fast)), model_(std::move(model)), options_(options) {}

CascadeSpeculator::~CascadeSpeculator() { StopModel(); }

std::string CascadeSpeculator::Name() const {
  std::string n = "cascade(";
  n += fast_ ? fast_->Name() : "none";
  n += "+";
  n += model_ ? model_->Name() : "none";
  return n + ")";
}

void CascadeSpeculator::StopModel() {
  if (shared_) shared_->cancelled = true;
  if (thread_.joinable()) thread_.join();
}

void CascadeSpeculator::Cancel() {
  StopModel();
  if (fast_) fast_->Cancel();
}

std::string CascadeSpeculator::model_error() const {
  if (!shared_) return "";
  std::lock_guard l(shared_->mu);
  return shared_->error;
}

void CascadeSpeculator::WaitForModel(std::chrono::milliseconds at_most) {
  if (!shared_) return;
  std::unique_lock l(shared_->mu);
  shared_->cv.wait_for(l, at_most, [&] { return shared_->finished; });
}

std::vector<Candidate> CascadeSpeculator::Merged() {
  std::vector<Candidate> model;
  if (shared_) {
    std::lock_guard l(shared_->mu);
    model = shared_->model;
    shared_->changed = false;
  }
  for (auto& c : model) c.confidence = std::clamp(model_calibration_.Adjust(c.confidence) * options_.model_weight, 0.0, 0.97);
  last_model_ = NormalizeCandidates(model, k_);
  return MergeCandidates({fast_list_, model}, k_);
}

Result<std::vector<Candidate>> CascadeSpeculator::Propose(const History& history, int k) {
  // The step that just arrived tells how the model's last candidates did.
  if (history.end() == history_size_ + 1 && !history.steps.empty() && shared_) {
    std::vector<Candidate> raw;
    {
      std::lock_guard l(shared_->mu);
      raw = NormalizeCandidates(shared_->model, k_);
    }
    model_calibration_.Record(raw, TrimCommand(history.steps.back().command));
  }
  StopModel();
  history_size_ = history.end();
  k_ = k;
  last_model_.clear();
  fast_list_.clear();
  if (fast_) {
    auto f = fast_->Propose(history, k);
    if (f.ok()) fast_list_ = std::move(*f);
  }
  if (!model_ || k <= 0) return NormalizeCandidates(fast_list_, k);
  shared_ = std::make_shared<Shared>();
  if (options_.hints) model_->SetHints(fast_list_);
  // The model thread gets its own copy of the history.
  thread_ = std::thread([shared = shared_, model = model_.get(), h = history, k, deadline = options_.model_deadline] {
    // A watchdog on the same flag: the call is cancelled at the deadline.
    std::thread watchdog([shared, deadline] {
      std::unique_lock l(shared->mu);
      shared->cv.wait_for(l, deadline, [&] { return shared->finished || shared->cancelled.load(); });
      shared->cancelled = true;
    });
    auto r = model->ProposeStreaming(h, k, &shared->cancelled, [&](const Candidate& c) {
      std::lock_guard l(shared->mu);
      shared->model.push_back(c);
      shared->changed = true;
    });
    {
      std::lock_guard l(shared->mu);
      if (r.ok()) {
        shared->model = std::move(*r);
        shared->changed = true;
      } else {
        shared->error = r.error().ToString();
      }
      shared->finished = true;
    }
    shared->cv.notify_all();
    watchdog.join();
  });
  if (options_.wait.count() > 0) WaitForModel(options_.wait);
  return Merged();
}

std::optional<std::vector<Candidate>> CascadeSpeculator::Refresh() {
  if (!shared_) return std::nullopt;
  {
    std::lock_guard l(shared_->mu);
    if (!shared_->changed) return std::nullopt;
  }
  return Merged();
}

}  // namespace specula::speculators
