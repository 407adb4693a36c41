# The sandbox's parsers of text it did not write itself. The captured shell
# state is written inside the sandbox by the action's EXIT trap, so it is
# attacker controlled (the action can read its token and write any state);
# the stored form comes back from the state database; the mount table is
# the kernel's, but names in it come from whoever made the mounts.
specula_add_fuzzer(NAME shell_state_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/shell_state_fuzzer.cpp
                   LIBS specula_sandbox)
specula_add_fuzzer(NAME cgroup_layout_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/cgroup_layout_fuzzer.cpp
                   LIBS specula_sandbox)
