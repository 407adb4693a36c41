// The project's version (CMakeLists.txt project()), shared by both binaries.
#pragma once

namespace specula {

const char* Version();

}  // namespace specula
