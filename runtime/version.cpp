// The project's version string, shared by both binaries.
namespace specula {
const char* Version() { return "0.1.0"; }
}  // namespace specula
