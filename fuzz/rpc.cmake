# The daemon's request decoder (runtime/rpc/protocol.h) and its framing:
# everything a client's bytes reach before a method handler runs.
specula_add_fuzzer(NAME rpc_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/rpc_fuzzer.cpp LIBS specula_rpc)
