//! Graphs laid out on the server, left to right, drawn as SVG by the
//! templates: the tasks of a DAG and the lineage of a dataset. Layers are
//! longest paths from the sources (petgraph's topological order); within a
//! layer, nodes sit near the mean place of their upstream nodes.

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

/// Width of a node box.
const NODE_W: i64 = 140;
/// Height of a node box.
const NODE_H: i64 = 34;
/// Space between layers.
const GAP_X: i64 = 34;
/// Space between nodes of a layer.
const GAP_Y: i64 = 16;
/// Margin around the drawing.
const PAD: i64 = 8;

/// A node to lay out.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// The label.
    pub label: String,
    /// A second, smaller line (the kind).
    pub sub: String,
    /// CSS class (the state colour).
    pub class: String,
    /// Where a click goes.
    pub href: Option<String>,
    /// Set by [`layout`].
    pub x: i64,
    /// Set by [`layout`].
    pub y: i64,
}

/// An edge as drawn.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// SVG path.
    pub d: String,
    /// CSS class (`dataset`, `unchecked` or empty).
    pub class: &'static str,
}

/// A laid out graph.
#[derive(Debug, Clone, Serialize)]
pub struct Drawing {
    /// Nodes with their places.
    pub nodes: Vec<Node>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// Width of the SVG.
    pub width: i64,
    /// Height of the SVG.
    pub height: i64,
    /// Node size, for the template.
    pub node_w: i64,
    /// Node size, for the template.
    pub node_h: i64,
}

/// Lays out `nodes` joined by `(from, to, class)` edges. A cycle (which a
/// loaded DAG cannot have) falls back to one node per layer.
pub fn layout(mut nodes: Vec<Node>, edges: &[(usize, usize, &'static str)]) -> Drawing {
    let mut g = DiGraph::<(), ()>::with_capacity(nodes.len(), edges.len());
    for _ in 0..nodes.len() {
        g.add_node(());
    }
    for &(a, b, _) in edges {
        if a < nodes.len() && b < nodes.len() {
            g.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
        }
    }
    let order: Vec<usize> = toposort(&g, None)
        .map(|o| o.into_iter().map(NodeIndex::index).collect())
        .unwrap_or_else(|_| (0..nodes.len()).collect());
    let mut layer = vec![0usize; nodes.len()];
    for &n in &order {
        for up in g.neighbors_directed(NodeIndex::new(n), petgraph::Direction::Incoming) {
            layer[n] = layer[n].max(layer[up.index()] + 1);
        }
    }
    let layers = layer.iter().copied().max().map_or(0, |m| m + 1);
    // Place each layer's nodes in order of their upstream nodes' mean row.
    let mut row = vec![0f64; nodes.len()];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for &n in &order {
        members[layer[n]].push(n);
    }
    for list in &mut members {
        let key = |n: usize| {
            let ups: Vec<f64> = g
                .neighbors_directed(NodeIndex::new(n), petgraph::Direction::Incoming)
                .map(|u| row[u.index()])
                .collect();
            if ups.is_empty() {
                n as f64
            } else {
                ups.iter().sum::<f64>() / ups.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize)> = list.iter().map(|&n| (key(n), n)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        *list = keyed.into_iter().map(|(_, n)| n).collect();
        for (i, &n) in list.iter().enumerate() {
            row[n] = i as f64;
        }
    }
    let tallest = members.iter().map(Vec::len).max().unwrap_or(0);
    let height = tallest as i64 * (NODE_H + GAP_Y) - GAP_Y + 2 * PAD;
    for list in &members {
        // Centre shorter layers against the tallest one.
        let offset = (tallest - list.len()) as i64 * (NODE_H + GAP_Y) / 2;
        for (i, &n) in list.iter().enumerate() {
            nodes[n].x = PAD + layer[n] as i64 * (NODE_W + GAP_X);
            nodes[n].y = PAD + offset + i as i64 * (NODE_H + GAP_Y);
        }
    }
    let edges = edges
        .iter()
        .filter(|(a, b, _)| *a < nodes.len() && *b < nodes.len())
        .map(|&(a, b, class)| {
            let (x1, y1) = (nodes[a].x + NODE_W, nodes[a].y + NODE_H / 2);
            let (x2, y2) = (nodes[b].x, nodes[b].y + NODE_H / 2);
            let mid = (x1 + x2) / 2;
            Edge {
                d: format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"),
                class,
            }
        })
        .collect();
    Drawing {
        width: (layers as i64 * (NODE_W + GAP_X) - GAP_X + 2 * PAD).max(NODE_W),
        height: height.max(NODE_H),
        nodes,
        edges,
        node_w: NODE_W,
        node_h: NODE_H,
    }
}

/// A node with a label, kind and class.
pub fn node(label: &str, sub: &str, class: &str, href: Option<String>) -> Node {
    Node {
        label: label.to_owned(),
        sub: sub.to_owned(),
        class: class.to_owned(),
        href,
        x: 0,
        y: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_go_left_to_right_by_longest_path() {
        // a → b → c, a → c: c sits two layers right of a.
        let nodes = ["a", "b", "c"].map(|n| node(n, "", "", None)).to_vec();
        let d = layout(nodes, &[(0, 1, ""), (1, 2, ""), (0, 2, "")]);
        assert!(d.nodes[0].x < d.nodes[1].x && d.nodes[1].x < d.nodes[2].x);
        assert_eq!(d.edges.len(), 3);
        assert!(d.width >= d.nodes[2].x + NODE_W);
    }

    #[test]
    fn siblings_share_a_layer_one_above_the_other() {
        let nodes = ["a", "b", "c"].map(|n| node(n, "", "", None)).to_vec();
        let d = layout(nodes, &[(0, 1, ""), (0, 2, "")]);
        assert_eq!(d.nodes[1].x, d.nodes[2].x);
        assert_ne!(d.nodes[1].y, d.nodes[2].y);
    }
}
