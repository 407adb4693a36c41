// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting; see runtime/cli/cli.cpp.
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "bin/bench_command.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

#include "agents/bench.h"

namespace specula::cli {

CliExtension BenchExtension() {
  return [](CLI::App& app, const CliGlobals& globals, std::function<int()>& action) {
    // Owned by the subcommand's callback, which CLI11 keeps alive with the app.
    auto opts = std::make_shared<agents::BenchOptions>();
    auto policy = std::make_shared<std::string>();
    auto steps = std::make_shared<bool>(false);
    auto* bench = app.add_subcommand(
        "bench", "run the trajectory corpus with speculation off and on through the daemon (docs/agents.md)");
    bench->add_option("--corpus", opts->corpus_dir, "trajectory directory (default: the shipped corpus)");
    bench->add_option("--only", opts->only, "only these trajectories (repeatable)");
    bench->add_option("--scale", opts->time_scale, "multiplier for recorded think times")->capture_default_str();
    bench->add_option("--k", opts->ks, "numbers of branches to try")->capture_default_str();
    bench->add_option("--policy", *policy, "policy for the bench sessions (file or shipped name)");
    bench->add_option("--seed", opts->seed, "random seed")->capture_default_str();
    bench->add_flag("--steps", *steps, "with --json: include every step's record");
    bench->callback([&globals, &action, opts, policy, steps] {
      action = [&globals, opts, policy, steps] {
        opts->json = globals.json;
        opts->include_steps = *steps;
        opts->make_environment = agents::DaemonEnvironmentFactory(globals.socket, *policy);
        return agents::BenchCommand(*opts, std::cout);
      };
    });
  };
}

}  // namespace specula::cli
