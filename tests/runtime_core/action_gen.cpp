#include "action_gen.h"

namespace specula::core::testing {

std::string ActionGenerator::Setup() const {
  const std::string& t = tree_;
  return "mkdir -p " + t + "/d0/sub " + t + "/d1 && echo alpha > " + t + "/f0 && echo beta > " + t +
         "/d0/f1 && printf 'gamma' > " + t + "/d0/sub/f2 && ln -s f0 " + t + "/l0 && " + "ln " + t + "/f0 " + t +
         "/h0 && chmod 0600 " + t + "/d0/f1";
}

std::string ActionGenerator::File() {
  return tree_ + "/" + Pick({"f0", "f3", "h0", "d0/f1", "d0/sub/f2", "d1/f4", "d2/f5"});
}
std::string ActionGenerator::Dir() { return tree_ + "/" + Pick({"d0", "d1", "d2", "d0/sub", "d3"}); }
std::string ActionGenerator::Word() { return Pick({"red", "green", "blue x", "42", "", "a\\tb", "z$q"}); }

std::string ActionGenerator::Next() {
  switch (Int(0, 27)) {
    case 0: return "echo '" + Word() + "' > " + File();
    case 1: return "echo '" + Word() + "' >> " + File();
    case 2: return "printf '%s' '" + Word() + "' > " + File();
    case 3: return "truncate -s " + std::to_string(Int(0, 3)) + " " + File();
    case 4: return "rm -f " + File();
    case 5: return "mv " + File() + " " + File();
    case 6: return "chmod 0" + Pick({"644", "600", "755", "444", "4755"}) + " " + File();
    case 7: return "chown " + Pick({"1234:5678", "0:0", "65534:65534"}) + " " + File();
    case 8: return "ln -sfn " + Pick({"f0", "../f0", "/etc/hostname", "missing"}) + " " + tree_ + "/" + Pick({"l0", "l1", "d0/l2"});
    case 9: return std::string("ln -f ") + File() + " " + File();
    case 10: return "mkdir -p " + Dir();
    case 11: return "rmdir " + Dir();
    case 12: return "rm -rf " + Dir();
    case 13: return "cd " + Dir();
    case 14: return "export V" + std::to_string(Int(0, 2)) + "='" + Word() + "'";
    case 15: return "alias a" + std::to_string(Int(0, 2)) + "='echo " + Word() + "'";
    case 16: return "fn" + std::to_string(Int(0, 2)) + "() { echo \"fn " + Word() + " $1\"; }";
    case 17: return "echo \"$V0|$V1|$V2\"; pwd; type fn0 fn1 2>&1 | head -3";
    case 18: return "cat " + File() + "; echo rc=$?";
    // A directory's size is the filesystem's (4096 on ext4; on btrfs the
    // length of the names in the topmost layer's copy, which depends on
    // how the history is layered), like its link count: printed for files.
    case 19:
      return "ls -la --time-style=+ " + Dir() +
             " | awk '{s = substr($1, 1, 1) == \"d\" ? \"-\" : $5; print $1, $3, $4, s, $7, $8, $9}'";
    case 20: return Pick({"false", "exit 7", "ls " + tree_ + "/nonexistent", "unset V0; (exit 3)"});
    case 21:
      ++bg_started_;
      return "(exec -a specula-bg-" + std::to_string(bg_started_) +
             " sh -c 'while :; do sleep 0.1; done') >/dev/null 2>&1 </dev/null &";
    case 22: return "pkill -f specula-bg-" + std::to_string(Int(1, bg_started_ + 1)) + "; sleep 0.2; true";
    // The background loops' own processes. Not their children: `sh` forks
    // for every `sleep`, and until that child execs it has the loop's argv
    // too, so a plain `ps` sometimes listed a loop twice, more often under
    // load (the differential tests' rare CI failures: "specula-bg-1" twice
    // in one run's output, once in the other's). Two real copies of a loop
    // still show as two lines.
    case 23:
      return R"CMD(ps -eo pid=,ppid=,args= | awk '$3 ~ /^specula-bg/ {bg[$1] = 1; parent[$1] = $2; line[$1] = $0} )CMD"
             R"CMD(END {for (p in line) if (!(parent[p] in bg)) {l = line[p]; sub(/^ *[0-9]+ +[0-9]+ +/, "", l); print l}}' | sort)CMD";
    case 24: return "umask 0" + Pick({"022", "077", "002"}) + "; touch " + File();
    // Link counts of files only: overlayfs reports 1 for a directory merged
    // from several layers (docs/checkpoints.md, known differences).
    case 25: return "cd " + tree_ + " && find . -printf '%p %y %m %U:%G %l\\n' | sort && find . -type f -printf '%p %n\\n' | sort";
    case 26: return "set -o " + Pick({"noclobber", "allexport"}) + "; shopt -s " + Pick({"extglob", "nullglob"});
    default: return "cat " + tree_ + "/l0 2>&1 | head -c 40; echo";
  }
}

}  // namespace specula::core::testing
