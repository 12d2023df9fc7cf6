//! A binary tree ensemble (gradient-boosted trees) as flat arrays, evaluated natively.
//!
//! Why this module exists: tract runs an ONNX `TreeEnsembleClassifier` correctly but 100–500× slower
//! than a plain loop (≈1.2 ms for 50 trees of depth 4 at batch 1, see DEPENDENCIES.md §3), so the hot
//! path evaluates trees here and tract only checks that the exported file means the same thing. The
//! representation is exactly what the ONNX export writes, so both agree bit for bit on the raw score:
//!
//! * a split sends `x[feature] <= threshold` to the *true* (left) child — ONNX `BRANCH_LEQ`; a NaN input
//!   fails the comparison and goes right, as ONNX does with `nodes_missing_value_tracks_true = 0`;
//! * the raw score of a row is the `f32` sum of its leaf values over the trees **in order, starting at
//!   0** (tract's `SUM` aggregate); the model's base score is already folded into the leaves of tree 0;
//! * the probability is `sigmoid(score)` (ONNX `post_transform = LOGISTIC`).
//!
//! Evaluation walks nodes in one contiguous `Vec`, reads the input slice and allocates nothing.

use serde::{Deserialize, Serialize};

/// Marks a leaf in [`Node::feature`].
pub const LEAF: u32 = u32::MAX;

/// One node of a tree. For a leaf, `feature == LEAF` and `value` is the leaf's score; for a split,
/// `value` is the threshold and `left` / `right` are node indices *within the same tree*.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub feature: u32,
    pub value: f32,
    pub left: u32,
    pub right: u32,
}

impl Node {
    pub const fn leaf(value: f32) -> Self {
        Self {
            feature: LEAF,
            value,
            left: 0,
            right: 0,
        }
    }

    pub const fn is_leaf(&self) -> bool {
        self.feature == LEAF
    }
}

/// Why an ensemble is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree {tree}: node {node} points to child {child}, outside the tree's {len} nodes")]
    ChildOutOfRange {
        tree: usize,
        node: usize,
        child: u32,
        len: usize,
    },
    #[error("tree {tree}: node {node} splits on feature {feature}, but rows have {inputs} values")]
    FeatureOutOfRange {
        tree: usize,
        node: usize,
        feature: u32,
        inputs: usize,
    },
    #[error("tree {tree}: child {child} of node {node} does not come after it (a cycle or a shared node)")]
    NotATree { tree: usize, node: usize, child: u32 },
    #[error("tree {tree} is empty")]
    EmptyTree { tree: usize },
    #[error("a value is not finite: tree {tree} node {node}")]
    NotFinite { tree: usize, node: usize },
}

/// A binary classifier made of regression trees on the log-odds scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    /// Number of input values per row.
    inputs: usize,
    /// All nodes of all trees; tree `t` occupies `roots[t]..roots[t + 1]` (or to the end).
    nodes: Vec<Node>,
    /// Index of each tree's root in `nodes`.
    roots: Vec<u32>,
}

impl TreeEnsemble {
    /// Builds an ensemble from per-tree node lists (node 0 is each tree's root, children index into the
    /// same list and always come after their parent). Checks the structure once, so evaluation can trust it.
    pub fn new(inputs: usize, trees: &[Vec<Node>]) -> Result<Self, TreeError> {
        let mut nodes = Vec::with_capacity(trees.iter().map(Vec::len).sum());
        let mut roots = Vec::with_capacity(trees.len());
        for (t, tree) in trees.iter().enumerate() {
            if tree.is_empty() {
                return Err(TreeError::EmptyTree { tree: t });
            }
            for (n, node) in tree.iter().enumerate() {
                if !node.value.is_finite() {
                    return Err(TreeError::NotFinite { tree: t, node: n });
                }
                if node.is_leaf() {
                    continue;
                }
                if node.feature as usize >= inputs {
                    return Err(TreeError::FeatureOutOfRange {
                        tree: t,
                        node: n,
                        feature: node.feature,
                        inputs,
                    });
                }
                for child in [node.left, node.right] {
                    if child as usize >= tree.len() {
                        return Err(TreeError::ChildOutOfRange {
                            tree: t,
                            node: n,
                            child,
                            len: tree.len(),
                        });
                    }
                    // Children after the parent rule out cycles, so a walk always ends at a leaf.
                    if child as usize <= n {
                        return Err(TreeError::NotATree {
                            tree: t,
                            node: n,
                            child,
                        });
                    }
                }
            }
            let base = nodes.len() as u32;
            roots.push(base);
            nodes.extend(tree.iter().map(|node| {
                if node.is_leaf() {
                    *node
                } else {
                    Node {
                        left: node.left + base,
                        right: node.right + base,
                        ..*node
                    }
                }
            }));
        }
        Ok(Self { inputs, nodes, roots })
    }

    /// Number of input values per row.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn tree_count(&self) -> usize {
        self.roots.len()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes of tree `t` with child indices local to the tree (as written to ONNX).
    pub fn tree(&self, t: usize) -> impl Iterator<Item = Node> + '_ {
        let start = self.roots.get(t).map_or(self.nodes.len(), |r| *r as usize);
        let end = self.roots.get(t + 1).map_or(self.nodes.len(), |r| *r as usize);
        let base = start as u32;
        self.nodes[start..end].iter().map(move |node| {
            if node.is_leaf() {
                *node
            } else {
                Node {
                    left: node.left - base,
                    right: node.right - base,
                    ..*node
                }
            }
        })
    }

    /// Adds `delta` to every leaf of tree 0 (how the base score is folded in).
    pub fn add_to_first_tree(&mut self, delta: f32) {
        let end = self.roots.get(1).map_or(self.nodes.len(), |r| *r as usize);
        for node in &mut self.nodes[..end] {
            if node.is_leaf() {
                node.value += delta;
            }
        }
    }

    /// The raw score (log-odds) of one row. `row.len()` must be at least [`Self::inputs`]; a shorter row
    /// reads a missing value as NaN (it goes right).
    #[inline]
    pub fn score(&self, row: &[f32]) -> f32 {
        let mut total = 0.0_f32;
        for &root in &self.roots {
            let mut index = root as usize;
            loop {
                let node = self.nodes[index];
                if node.is_leaf() {
                    total += node.value;
                    break;
                }
                let x = row.get(node.feature as usize).copied().unwrap_or(f32::NAN);
                index = if x <= node.value { node.left } else { node.right } as usize;
            }
        }
        total
    }

    /// P(class 1) of one row.
    #[inline]
    pub fn probability(&self, row: &[f32]) -> f32 {
        sigmoid(self.score(row))
    }

    /// P(class 1) of each row of a row-major batch (`inputs.len() == out.len() * self.inputs()`).
    pub fn probabilities(&self, inputs: &[f32], out: &mut [f32]) {
        for (row, p) in inputs.chunks_exact(self.inputs.max(1)).zip(out.iter_mut()) {
            *p = self.probability(row);
        }
    }

    /// The deepest root-to-leaf path, in splits.
    pub fn max_depth(&self) -> usize {
        (0..self.tree_count())
            .map(|t| {
                let nodes: Vec<Node> = self.tree(t).collect();
                depth_of(&nodes, 0)
            })
            .max()
            .unwrap_or(0)
    }
}

fn depth_of(nodes: &[Node], index: usize) -> usize {
    let node = nodes[index];
    if node.is_leaf() {
        0
    } else {
        1 + depth_of(nodes, node.left as usize).max(depth_of(nodes, node.right as usize))
    }
}

/// The logistic function in `f32`, computed in `f64` so it is correctly rounded for every score.
#[inline]
pub fn sigmoid(score: f32) -> f32 {
    (1.0 / (1.0 + (-f64::from(score)).exp())) as f32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn split(feature: u32, threshold: f32, left: u32, right: u32) -> Node {
        Node {
            feature,
            value: threshold,
            left,
            right,
        }
    }

    fn two_trees() -> TreeEnsemble {
        TreeEnsemble::new(
            2,
            &[
                vec![
                    split(0, 0.5, 1, 2),
                    Node::leaf(-1.0),
                    split(1, 2.0, 3, 4),
                    Node::leaf(0.25),
                    Node::leaf(2.0),
                ],
                vec![Node::leaf(0.5)],
            ],
        )
        .unwrap()
    }

    #[test]
    fn scores_follow_leq_to_the_left_and_sum_trees() {
        let model = two_trees();
        assert_eq!(model.tree_count(), 2);
        assert_eq!(model.node_count(), 6);
        assert_eq!(model.max_depth(), 2);
        assert_eq!(model.score(&[0.5, 9.0]), -0.5); // equal to the threshold goes left
        assert_eq!(model.score(&[0.6, 2.0]), 0.75);
        assert_eq!(model.score(&[0.6, 2.1]), 2.5);
        assert_eq!(model.score(&[f32::NAN, 0.0]), 0.75); // NaN goes right
        assert_eq!(model.probability(&[0.5, 0.0]), sigmoid(-0.5));
        let mut out = [0.0; 2];
        model.probabilities(&[0.5, 9.0, 0.6, 2.1], &mut out);
        assert_eq!(out, [sigmoid(-0.5), sigmoid(2.5)]);
    }

    #[test]
    fn local_view_round_trips_and_base_folds_into_tree_zero() {
        let mut model = two_trees();
        let trees: Vec<Vec<Node>> = (0..2).map(|t| model.tree(t).collect()).collect();
        assert_eq!(TreeEnsemble::new(2, &trees).unwrap(), model);
        model.add_to_first_tree(1.0);
        assert_eq!(model.score(&[0.5, 9.0]), 0.5);
        assert_eq!(model.tree(1).next().unwrap().value, 0.5);
    }

    #[test]
    fn malformed_trees_are_refused() {
        let bad_child = TreeEnsemble::new(1, &[vec![split(0, 0.0, 1, 5), Node::leaf(0.0)]]);
        assert!(matches!(bad_child, Err(TreeError::ChildOutOfRange { .. })));
        let cycle = TreeEnsemble::new(1, &[vec![split(0, 0.0, 0, 1), Node::leaf(0.0)]]);
        assert!(matches!(cycle, Err(TreeError::NotATree { .. })));
        let feature = TreeEnsemble::new(1, &[vec![split(3, 0.0, 1, 2), Node::leaf(0.0), Node::leaf(1.0)]]);
        assert!(matches!(feature, Err(TreeError::FeatureOutOfRange { .. })));
        assert_eq!(
            TreeEnsemble::new(1, &[vec![]]),
            Err(TreeError::EmptyTree { tree: 0 })
        );
        assert!(matches!(
            TreeEnsemble::new(1, &[vec![Node::leaf(f32::INFINITY)]]),
            Err(TreeError::NotFinite { .. })
        ));
    }

    #[test]
    fn sigmoid_is_symmetric_and_saturates() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-7);
        assert_eq!(sigmoid(200.0), 1.0);
        assert_eq!(sigmoid(-200.0), 0.0);
    }
}
