# The head parser of the MCP Streamable HTTP transport
# (runtime/mcp/http_request.h): what a local client's bytes reach first.
specula_add_fuzzer(NAME mcp_http_fuzzer SOURCES ${CMAKE_CURRENT_LIST_DIR}/mcp_http_fuzzer.cpp LIBS specula_mcp)
