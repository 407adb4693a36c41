// `specula log`: a session's checkpoint DAG drawn newest first as a graph in
// the style of `git log --graph` ('*' a checkpoint, '|' a line of descent,
// '/' where a branch joins its parent). Pure, so it is unit-tested on shapes.
#pragma once

#include <string>
#include <vector>

namespace specula::cli {

struct GraphNode {
  std::string id;
  std::string parent;  // "" for a root
  std::string text;    // what to print after the id
};

// Nodes may come in any order; a parent listed before its children is kept
// in that order among siblings (older first). A node whose parent is not in
// the list is drawn as a root. Each output line ends with '\n'.
std::string RenderCheckpointGraph(const std::vector<GraphNode>& nodes);

}  // namespace specula::cli
