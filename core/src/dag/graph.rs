//! Task dependencies as a petgraph graph: explicit `depends_on` plus the
//! implicit edges from datasets (a reader runs after the writer).

use petgraph::Direction;
use petgraph::algo::{astar, tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

/// Why an edge exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// Declared with `depends_on`.
    Explicit,
    /// The downstream task reads a dataset the upstream task writes.
    Dataset,
    /// As `Dataset`, but the dataset is read without a contract's check
    /// (raw or quarantined data named under `unchecked_inputs`).
    UncheckedDataset,
}

/// The dependency graph of one DAG. Node `i` is the `i`-th task in file order.
#[derive(Debug, Clone, Default)]
pub struct DagGraph {
    graph: DiGraph<(), EdgeKind, u32>,
    order: Vec<usize>,
    /// `position[task]` is the task's place in `order`.
    position: Vec<usize>,
}

/// A dependency cycle, as task indexes; the first index is repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<usize>);

impl DagGraph {
    /// Builds the graph of `n` tasks from `(upstream, downstream, kind)` edges.
    /// A duplicate edge is kept once (an explicit edge wins over a dataset edge).
    pub fn build(n: usize, edges: &[(usize, usize, EdgeKind)]) -> Result<DagGraph, Cycle> {
        let mut graph = DiGraph::<(), EdgeKind, u32>::with_capacity(n, edges.len());
        for _ in 0..n {
            graph.add_node(());
        }
        for &(from, to, kind) in edges {
            let (a, b) = (NodeIndex::new(from), NodeIndex::new(to));
            match graph.find_edge(a, b) {
                Some(e) if kind == EdgeKind::Explicit => graph[e] = kind,
                Some(_) => {}
                None => {
                    graph.add_edge(a, b, kind);
                }
            }
        }
        match toposort(&graph, None) {
            Ok(order) => {
                let order: Vec<usize> = order.into_iter().map(NodeIndex::index).collect();
                let mut position = vec![0; n];
                for (p, &t) in order.iter().enumerate() {
                    position[t] = p;
                }
                Ok(DagGraph {
                    graph,
                    order,
                    position,
                })
            }
            Err(_) => Err(find_cycle(&graph)),
        }
    }

    /// Task indexes in an order where every task comes after its upstream tasks.
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// The place of `task` in [`DagGraph::topological_order`].
    pub fn position(&self, task: usize) -> usize {
        self.position.get(task).copied().unwrap_or(usize::MAX)
    }

    /// Direct upstream tasks of `task`.
    pub fn upstream(&self, task: usize) -> Vec<usize> {
        self.neighbors(task, Direction::Incoming)
    }

    /// Direct downstream tasks of `task`.
    pub fn downstream(&self, task: usize) -> Vec<usize> {
        self.neighbors(task, Direction::Outgoing)
    }

    /// Every task reachable downstream of `task` (not including it).
    pub fn all_downstream(&self, task: usize) -> Vec<usize> {
        let mut dfs = Dfs::new(&self.graph, NodeIndex::new(task));
        let mut out = Vec::new();
        while let Some(n) = dfs.next(&self.graph) {
            if n.index() != task {
                out.push(n.index());
            }
        }
        out.sort_unstable();
        out
    }

    /// `tasks` and, as asked, everything upstream and downstream of them:
    /// each once, in index order (what a clear or a mark reaches).
    pub fn with_relatives(&self, tasks: &[usize], upstream: bool, downstream: bool) -> Vec<usize> {
        let mut out = tasks.to_vec();
        for &t in tasks {
            if upstream {
                out.extend(self.all_upstream(t));
            }
            if downstream {
                out.extend(self.all_downstream(t));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every task reachable upstream of `task` (not including it).
    pub fn all_upstream(&self, task: usize) -> Vec<usize> {
        let rev = Reversed(&self.graph);
        let mut dfs = Dfs::new(rev, NodeIndex::new(task));
        let mut out = Vec::new();
        while let Some(n) = dfs.next(rev) {
            if n.index() != task {
                out.push(n.index());
            }
        }
        out.sort_unstable();
        out
    }

    /// Every edge as `(upstream, downstream, kind)`.
    pub fn edges(&self) -> Vec<(usize, usize, EdgeKind)> {
        let mut out: Vec<_> = self
            .graph
            .edge_indices()
            .filter_map(|e| {
                let (a, b) = self.graph.edge_endpoints(e)?;
                Some((a.index(), b.index(), self.graph[e]))
            })
            .collect();
        out.sort_unstable_by_key(|&(a, b, _)| (a, b));
        out
    }

    fn neighbors(&self, task: usize, dir: Direction) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(task), dir)
            .map(NodeIndex::index)
            .collect();
        out.sort_unstable();
        out
    }
}

/// One cycle of a graph known to have one: the strongly connected component
/// holding the earliest task, walked from that task back to itself.
fn find_cycle(graph: &DiGraph<(), EdgeKind, u32>) -> Cycle {
    let cyclic = tarjan_scc(graph)
        .into_iter()
        .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
        .filter_map(|scc| scc.iter().min().copied().map(|start| (start, scc)))
        .min_by_key(|(start, _)| *start);
    let Some((start, scc)) = cyclic else {
        return Cycle(Vec::new());
    };
    if graph.contains_edge(start, start) {
        return Cycle(vec![start.index(), start.index()]);
    }
    // The shortest way back to `start` from one of its successors inside the component.
    let best = graph
        .neighbors(start)
        .filter(|n| scc.contains(n))
        .filter_map(|next| {
            astar(graph, next, |n| n == start, |_| 1u32, |_| 0).map(|(_, path)| path)
        })
        .min_by_key(Vec::len)
        .unwrap_or_default();
    let mut cycle = vec![start.index()];
    cycle.extend(best.into_iter().map(NodeIndex::index));
    Cycle(cycle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_neighbours() {
        let e = EdgeKind::Explicit;
        let g = DagGraph::build(4, &[(0, 1, e), (1, 2, e), (0, 3, EdgeKind::Dataset)])
            .unwrap_or_else(|c| panic!("{c:?}"));
        let pos = |t| g.topological_order().iter().position(|&x| x == t);
        assert!(pos(0) < pos(1) && pos(1) < pos(2) && pos(0) < pos(3));
        assert_eq!(g.downstream(0), vec![1, 3]);
        assert_eq!(g.all_downstream(0), vec![1, 2, 3]);
        assert_eq!(g.all_upstream(2), vec![0, 1]);
    }

    #[test]
    fn cycles_are_named_from_the_earliest_task() {
        let e = EdgeKind::Explicit;
        let c = DagGraph::build(4, &[(3, 1, e), (1, 2, e), (2, 3, e), (0, 1, e)]).unwrap_err();
        assert_eq!(c, Cycle(vec![1, 2, 3, 1]));
        let selfloop = DagGraph::build(2, &[(1, 1, e)]).unwrap_err();
        assert_eq!(selfloop, Cycle(vec![1, 1]));
    }
}
