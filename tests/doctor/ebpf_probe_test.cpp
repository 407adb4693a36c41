// ebpf/probe.h against the real kernel (root). What loads here is recorded in
// ENVIRONMENT.md: tracepoint, raw_tp, tp_btf and cgroup sock_addr programs
// load; fentry and lsm are refused with EPERM at load.
#include <gtest/gtest.h>

#include <cerrno>

#include "ebpf/probe.h"

namespace specula::ebpf {
namespace {

TEST(EbpfProbeTest, TypesTheDesignNeedsLoad) {
  ProgramTypeSupport s = ProbeProgramTypes();
  EXPECT_TRUE(s.vmlinux_btf);
  EXPECT_TRUE(s.tracepoint.loaded) << s.tracepoint.detail;
  EXPECT_TRUE(s.raw_tp.loaded) << s.raw_tp.detail;
  EXPECT_TRUE(s.cgroup_sock_addr.loaded) << s.cgroup_sock_addr.detail;
  EXPECT_TRUE(s.tp_btf.loaded) << s.tp_btf.detail;
  EXPECT_EQ(s.tracepoint.sys_errno, 0);
}

TEST(EbpfProbeTest, FentryAndLsmAreRefusedOnThisMachine) {
  ProgramTypeSupport s = ProbeProgramTypes();
  EXPECT_FALSE(s.fentry.loaded) << s.fentry.detail;
  EXPECT_EQ(s.fentry.sys_errno, EPERM) << s.fentry.detail;
  EXPECT_FALSE(s.lsm.loaded) << s.lsm.detail;
  EXPECT_EQ(s.lsm.sys_errno, EPERM) << s.lsm.detail;
  // The refusal is the load's, not a failed BTF lookup.
  EXPECT_NE(s.fentry.detail.find("load refused"), std::string::npos) << s.fentry.detail;
  EXPECT_NE(s.lsm.detail.find("load refused"), std::string::npos) << s.lsm.detail;
}

TEST(EbpfProbeTest, RepeatedProbesAgree) {
  ProgramTypeSupport a = ProbeProgramTypes(), b = ProbeProgramTypes();
  EXPECT_EQ(a.tracepoint.loaded, b.tracepoint.loaded);
  EXPECT_EQ(a.fentry.loaded, b.fentry.loaded);
  EXPECT_EQ(a.lsm.loaded, b.lsm.loaded);
}

}  // namespace
}  // namespace specula::ebpf
