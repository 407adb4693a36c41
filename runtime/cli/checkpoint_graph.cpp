#include "runtime/cli/checkpoint_graph.h"

#include <algorithm>
#include <unordered_map>

namespace specula::cli {
namespace {

// Parent-before-child order that otherwise keeps the input order (Kahn's
// algorithm, always taking the earliest ready node), so siblings stay
// oldest first; the graph then walks it backwards (newest first).
std::vector<size_t> ParentsFirst(const std::vector<GraphNode>& nodes) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < nodes.size(); ++i) index.emplace(nodes[i].id, i);
  std::vector<std::vector<size_t>> children(nodes.size());
  std::vector<bool> ready(nodes.size(), false);
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto it = index.find(nodes[i].parent);
    if (nodes[i].parent.empty() || it == index.end() || it->second == i) ready[i] = true;
    else children[it->second].push_back(i);
  }
  std::vector<size_t> order;
  std::vector<bool> done(nodes.size(), false);
  while (order.size() < nodes.size()) {
    size_t pick = nodes.size();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (ready[i] && !done[i]) { pick = i; break; }
    }
    if (pick == nodes.size()) {
      // A cycle (corrupt input): draw the rest as roots rather than loop.
      for (size_t i = 0; i < nodes.size(); ++i) {
        if (!done[i]) { pick = i; break; }
      }
    }
    done[pick] = true;
    order.push_back(pick);
    for (size_t c : children[pick]) ready[c] = true;
  }
  return order;
}

std::string Bars(size_t columns, size_t star) {
  std::string line;
  for (size_t i = 0; i < columns; ++i) {
    if (i > 0) line += ' ';
    line += i == star ? '*' : '|';
  }
  return line;
}

// The line drawn when columns are removed: columns left of the first removed
// one go straight down ('|'), the ones right of it lean left ('/') into their
// new place. A removed column is drawn joining its left neighbour when it
// merges into it (draw_removed), and not at all when its line just ends.
std::string JoinLine(size_t columns, const std::vector<size_t>& removed, bool draw_removed) {
  size_t first = *std::min_element(removed.begin(), removed.end());
  std::string line(2 * columns, ' ');
  for (size_t j = 0; j < columns; ++j) {
    bool is_removed = std::find(removed.begin(), removed.end(), j) != removed.end();
    if (j < first) line[2 * j] = '|';
    else if (j > 0 && (!is_removed || draw_removed)) line[2 * j - 1] = '/';
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

}  // namespace

std::string RenderCheckpointGraph(const std::vector<GraphNode>& nodes) {
  std::vector<size_t> order = ParentsFirst(nodes);
  std::reverse(order.begin(), order.end());
  std::unordered_map<std::string, bool> present;
  for (const auto& n : nodes) present[n.id] = true;

  std::vector<std::string> cols;  // the checkpoint each column is waiting for
  std::string out;
  for (size_t i : order) {
    const GraphNode& n = nodes[i];
    std::vector<size_t> matches;
    for (size_t c = 0; c < cols.size(); ++c) {
      if (cols[c] == n.id) matches.push_back(c);
    }
    if (matches.empty()) {
      cols.push_back(n.id);  // a tip: newest of its line
      matches.push_back(cols.size() - 1);
    }
    size_t col = matches.front();
    if (matches.size() > 1) {
      // Several children's lines end here: join them into this column first.
      std::vector<size_t> removed(matches.begin() + 1, matches.end());
      out += JoinLine(cols.size(), removed, true) + "\n";
      for (auto it = removed.rbegin(); it != removed.rend(); ++it) cols.erase(cols.begin() + static_cast<long>(*it));
    }
    out += Bars(cols.size(), col) + " " + n.id;
    if (!n.text.empty()) out += "  " + n.text;
    out += "\n";
    bool has_parent = !n.parent.empty() && n.parent != n.id && present.count(n.parent) > 0;
    if (has_parent) {
      cols[col] = n.parent;
    } else {
      bool right = col + 1 < cols.size();
      size_t before = cols.size();
      cols.erase(cols.begin() + static_cast<long>(col));
      if (right) out += JoinLine(before, {col}, false) + "\n";
    }
  }
  return out;
}

}  // namespace specula::cli
