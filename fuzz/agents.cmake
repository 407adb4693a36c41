# Trajectory files (docs/trajectories.md): `specula-trajectories` reads any
# directory a user points it at (their own agent logs), so its JSONL parser
# sees arbitrary bytes.
specula_add_fuzzer(NAME trajectory_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/trajectory_fuzzer.cpp
                   LIBS specula_agents)
