// Which eBPF program types this kernel really accepts, found by LOADING a
// two-instruction program (`r0 = 0; exit`) of each type, never by reading the
// kernel config: lockdown, missing BTF, a disabled BPF LSM or a hypervisor can
// each refuse a type that the config enables (ENVIRONMENT.md: here fentry and
// lsm are refused with EPERM). The eBPF loaders use the result to switch
// features off; `specula doctor` reports it.
#pragma once

#include <string>

namespace specula::ebpf {

struct ProgramTypeProbe {
  bool loaded = false;  // the kernel accepted a program of this type
  int sys_errno = 0;    // errno of the refused load (or of the BTF lookup), 0 if loaded
  std::string detail;   // what was tried and why it failed, one line
};

struct ProgramTypeSupport {
  ProgramTypeProbe tracepoint;        // BPF_PROG_TYPE_TRACEPOINT (tracepoint/syscalls/*)
  ProgramTypeProbe raw_tp;            // BPF_PROG_TYPE_RAW_TRACEPOINT (raw_tp/*)
  ProgramTypeProbe tp_btf;            // TRACING + BPF_TRACE_RAW_TP on btf_trace_sys_enter
  ProgramTypeProbe cgroup_sock_addr;  // CGROUP_SOCK_ADDR + BPF_CGROUP_INET4_CONNECT
  ProgramTypeProbe fentry;            // TRACING + BPF_TRACE_FENTRY on do_unlinkat
  ProgramTypeProbe lsm;               // LSM + BPF_LSM_MAC on bpf_lsm_file_open
  bool vmlinux_btf = false;           // btf__load_vmlinux_btf() succeeded
};

// Loads (and at once closes) one tiny program per type. Needs CAP_BPF (root);
// without it every probe reports EPERM. Never throws; takes a few ms (the
// vmlinux BTF parse dominates).
ProgramTypeSupport ProbeProgramTypes();

}  // namespace specula::ebpf
