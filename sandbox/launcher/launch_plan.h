/* The plan of one action, as the runtime hands it to the launcher
 * (sandbox/launcher/launcher.c). Shared by C (the launcher) and C++ (the
 * runtime builds it, sandbox/action_runner.cpp): plain fixed-size fields,
 * strings and the seccomp program in one trailing byte area addressed by
 * offsets. The launcher finds it on fd SPECULA_LAUNCH_PLAN_FD (a sealed
 * memfd) and its other fds at the slots below: the forked runtime child
 * moves exactly these onto fds 3.. and closes every other fd before it
 * execs the launcher, so no fd of the runtime reaches the sandbox. */
#ifndef SPECULA_SANDBOX_LAUNCH_PLAN_H
#define SPECULA_SANDBOX_LAUNCH_PLAN_H

#include <stdint.h>

#define SPECULA_LAUNCH_MAGIC 0x53504c4eu /* "SPLN" */
#define SPECULA_LAUNCH_VERSION 1u
#define SPECULA_LAUNCH_MAX_BYTES (256u * 1024u)
#define SPECULA_LAUNCH_MAX_ARGS 16u
#define SPECULA_LAUNCH_MAX_V1_CGROUPS 8u

/* fd slots in the launcher (fixed numbers: the child places them). */
enum {
  SPECULA_LAUNCH_PLAN_FD = 3,
  SPECULA_LAUNCH_REPORT_FD = 4,   /* ChildFailure records (common/child_report.h) */
  SPECULA_LAUNCH_PID_FD = 5,      /* the action's host pid (pid_t) */
  SPECULA_LAUNCH_INIT_PIDFD = 6,  /* pidfd of the sandbox's init: setns target */
  SPECULA_LAUNCH_CGROUP2_FD = 7,  /* the sandbox's cgroup2 dir: CLONE_INTO_CGROUP */
  SPECULA_LAUNCH_STDOUT_FD = 8,
  SPECULA_LAUNCH_STDERR_FD = 9,
  SPECULA_LAUNCH_LISTENER_FD = 10, /* socket for the seccomp listener, or -1 */
  SPECULA_LAUNCH_FIRST_V1_FD = 11  /* v1 cgroup.procs fds, n_v1_cgroups of them */
};

struct specula_launch_plan {
  uint32_t magic;
  uint32_t version;
  uint32_t total_bytes;    /* header + byte area */
  uint32_t setns_flags;    /* namespaces of init to join (CLONE_NEW*) */
  uint32_t user_namespace; /* 1: become uid/gid 0 of init's user namespace */
  uint32_t n_v1_cgroups;
  uint32_t has_listener;   /* the filter has a defer rule: send its listener */
  uint32_t seccomp_len;    /* sock_filter entries at seccomp_off */
  uint32_t seccomp_off;
  uint32_t exe_off;        /* NUL-terminated strings at these offsets */
  uint32_t dev_null_off;
  uint32_t argc, envc;
  uint32_t argv_off[SPECULA_LAUNCH_MAX_ARGS];
  uint32_t envp_off[SPECULA_LAUNCH_MAX_ARGS];
  int32_t last_cap;
  uint32_t pad;
  uint64_t cap_mask;       /* bounding = effective = permitted set */
  uint64_t nofile;         /* RLIMIT_NOFILE (capped at the hard limit) */
  /* byte area follows */
};

#endif
