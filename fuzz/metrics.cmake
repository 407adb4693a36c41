# The metrics endpoint's HTTP request handling (any bytes a TCP client
# sends to --metrics-listen), seeded with requests in fuzz/corpus/metrics_http/.
specula_add_fuzzer(NAME metrics_http_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/metrics_http_fuzzer.cpp
                   LIBS specula_metrics)
