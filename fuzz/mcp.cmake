# The MCP server's message parser (runtime/mcp/message.h) and its dispatch
# (runtime/mcp/server.h): everything an MCP client's bytes reach.
specula_add_fuzzer(NAME mcp_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/mcp_fuzzer.cpp LIBS specula_mcp)
