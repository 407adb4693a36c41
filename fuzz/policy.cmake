# The policy parser (TOML -> Policy, validation, explain), seeded with the
# shipped policies in fuzz/corpus/policy/.
specula_add_fuzzer(NAME policy_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/policy_fuzzer.cpp
                   LIBS specula_policies)
