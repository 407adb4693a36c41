// The cascade: the fast (built-in) speculator's proposals at once, a model
// speculator's proposals added as they stream in, duplicates merged and
// confidences combined (MergeCandidates). The model call runs on a thread
// of its own per proposal; a newer proposal, Cancel() or the destructor
// cancels it (within 50 ms), a deadline bounds it, and any error leaves the
// fast proposals alone (the fallback). The model's self-reported
// confidences are corrected online by its measured hit rate in the session.
//
// Threading: Propose/Refresh/Cancel from one thread (the session's); the
// model thread only touches the shared, locked state.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "speculators/calibration.h"
#include "speculators/model_speculator.h"
#include "speculators/speculator.h"

namespace specula::speculators {

struct CascadeOptions {
  std::chrono::milliseconds model_deadline{10000};  // then the model call is cancelled
  // Propose() waits this long for the model's reply (0: return the fast
  // proposals at once; the model's arrive through Refresh()).
  std::chrono::milliseconds wait{0};
  bool hints = true;           // offer the fast candidates to the model
  double model_weight = 1.0;   // multiplies the model's (online-corrected) confidences
};

class CascadeSpeculator : public Speculator {
 public:
  CascadeSpeculator(std::unique_ptr<Speculator> fast, std::unique_ptr<ModelSpeculator> model,
                    CascadeOptions options = {});
  ~CascadeSpeculator() override;
  CascadeSpeculator(const CascadeSpeculator&) = delete;
  CascadeSpeculator& operator=(const CascadeSpeculator&) = delete;

  Result<std::vector<Candidate>> Propose(const History& history, int k) override;
  std::optional<std::vector<Candidate>> Refresh() override;
  void Cancel() override;
  std::string Name() const override;

  // The model call's outcome for the last proposal: "" while running or
  // when it succeeded, else its error (the fallback was used).
  std::string model_error() const;
  // Blocks until the model call of the last proposal ended (tests).
  void WaitForModel(std::chrono::milliseconds at_most);

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Candidate> model;  // streamed so far
    bool changed = false, finished = false;
    std::string error;
    std::atomic<bool> cancelled{false};
  };
  std::vector<Candidate> Merged();
  void StopModel();

  std::unique_ptr<Speculator> fast_;
  std::unique_ptr<ModelSpeculator> model_;
  CascadeOptions options_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
  std::vector<Candidate> fast_list_;
  int k_ = 0;
  size_t history_size_ = 0;
  std::vector<Candidate> last_model_;  // the model's candidates of the previous step, for online calibration
  OnlineCalibrator model_calibration_;
};

}  // namespace specula::speculators
