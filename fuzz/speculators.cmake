# The speculators' parsers of untrusted text: the model file (a user may
# pass their own with --model) and the model APIs' streams (SSE framing,
# the streamed-candidate parser), plus the command/output analysis that
# every committed step goes through.
specula_add_fuzzer(NAME model_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/model_fuzzer.cpp
                   LIBS specula_speculators)
specula_add_fuzzer(NAME sse_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/sse_fuzzer.cpp
                   LIBS specula_speculators)
