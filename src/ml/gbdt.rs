//! Gradient-boosted decision trees for binary classification (logistic loss), trained in-process.
//!
//! Why our own and not a crate: the model must be exported to an ONNX `TreeEnsembleClassifier` that
//! tract reproduces bit for bit, so thresholds must be `f32` values whose `x <= t` test partitions the
//! training rows exactly as the trainer did; and the recommended crate (forust-ml 0.8) trains on `f64`
//! thresholds, adds rayon and turns on `serde_json/float_roundtrip` for the whole build (rebuilding
//! every crate that uses `serde_json` on a shared 2-core machine). The algorithm is the `XGBoost` one, small
//! enough to test completely:
//!
//! * per feature, up to [`GbdtParams::max_bins`] − 1 cut points at weighted-free quantiles of the
//!   distinct training values; a row's bin is the number of cuts strictly below its value, so
//!   `bin <= k ⇔ x <= cuts[k]` holds exactly in `f32` (property-tested), and a split found on bins is
//!   the split the exported threshold makes;
//! * logistic loss with sample weights: `g = w (p − y)`, `h = w p (1 − p)`; a leaf is
//!   `−learning_rate · G / (H + λ)`; a split's gain is `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`, taken
//!   when above [`GbdtParams::min_split_gain`] with at least [`GbdtParams::min_child_weight`] hessian on
//!   each side;
//! * depth-first growth to [`GbdtParams::max_depth`]; the base score (log-odds of the weighted positive
//!   rate) is folded into tree 0's leaves at the end, so the model is nothing but trees.
//!
//! Training is deterministic: the same data and parameters give the same trees.

use super::trees::{Node, TreeEnsemble, TreeError};

/// Training parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GbdtParams {
    pub trees: usize,
    pub max_depth: usize,
    pub learning_rate: f64,
    /// L2 regularisation of leaf values (λ).
    pub lambda: f64,
    /// Minimum hessian sum in a child.
    pub min_child_weight: f64,
    /// Minimum gain for a split (γ).
    pub min_split_gain: f64,
    /// Histogram bins per feature (2..=256).
    pub max_bins: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            trees: 100,
            max_depth: 3,
            learning_rate: 0.05,
            lambda: 1.0,
            min_child_weight: 2.0,
            min_split_gain: 0.0,
            max_bins: 64,
        }
    }
}

/// Why training could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GbdtError {
    #[error("no training rows")]
    Empty,
    #[error("{values} input values are not a multiple of {inputs} per row")]
    Shape { values: usize, inputs: usize },
    #[error("{what} has {got} entries for {rows} rows")]
    Length {
        what: &'static str,
        got: usize,
        rows: usize,
    },
    #[error("row {row}: {what} is not finite or out of range")]
    BadValue { row: usize, what: &'static str },
    #[error("the total sample weight is zero")]
    ZeroWeight,
    #[error("all weighted labels are the same class; nothing to learn")]
    OneClass,
    #[error("invalid parameter: {0}")]
    Params(&'static str),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// A row-major `f32` matrix with labels in {0, 1} and non-negative weights.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    pub inputs: usize,
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub w: &'a [f32],
}

impl Dataset<'_> {
    pub fn rows(&self) -> usize {
        self.x.len() / self.inputs.max(1)
    }

    fn validate(&self) -> Result<(), GbdtError> {
        if self.inputs == 0 || !self.x.len().is_multiple_of(self.inputs) {
            return Err(GbdtError::Shape {
                values: self.x.len(),
                inputs: self.inputs,
            });
        }
        let rows = self.rows();
        if rows == 0 {
            return Err(GbdtError::Empty);
        }
        for (what, got) in [("labels", self.y.len()), ("weights", self.w.len())] {
            if got != rows {
                return Err(GbdtError::Length { what, got, rows });
            }
        }
        for row in 0..rows {
            if !(self.y[row] == 0.0 || self.y[row] == 1.0) {
                return Err(GbdtError::BadValue { row, what: "label" });
            }
            if !(self.w[row].is_finite() && self.w[row] >= 0.0) {
                return Err(GbdtError::BadValue { row, what: "weight" });
            }
            if self.x[row * self.inputs..(row + 1) * self.inputs]
                .iter()
                .any(|v| !v.is_finite())
            {
                return Err(GbdtError::BadValue { row, what: "input" });
            }
        }
        Ok(())
    }
}

/// Cut points per feature: `bin(x) = #{cuts < x}`, so `bin(x) <= k ⇔ x <= cuts[k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bins {
    pub cuts: Vec<Vec<f32>>,
}

impl Bins {
    /// Quantile cuts of each column: midpoints between consecutive distinct values, at most
    /// `max_bins − 1` of them, evenly spaced in rank over the distinct values.
    pub fn fit(data: &Dataset<'_>, max_bins: usize) -> Self {
        let rows = data.rows();
        let cuts = (0..data.inputs)
            .map(|f| {
                let mut values: Vec<f32> = (0..rows).map(|r| data.x[r * data.inputs + f]).collect();
                values.sort_by(f32::total_cmp);
                values.dedup();
                let gaps = values.len().saturating_sub(1);
                let wanted = gaps.min(max_bins.saturating_sub(1));
                let mut cuts: Vec<f32> = (1..=wanted)
                    .map(|k| {
                        // The k-th of `wanted` evenly spaced gaps between distinct values.
                        let gap = (k * gaps).div_ceil(wanted + 1).clamp(1, gaps);
                        let (a, b) = (values[gap - 1], values[gap]);
                        let mid = f64::midpoint(f64::from(a), f64::from(b)) as f32;
                        // Rounding to f32 may land on b; a then separates the two values exactly.
                        if mid >= b { a } else { mid }
                    })
                    .collect();
                cuts.dedup();
                cuts
            })
            .collect();
        Self { cuts }
    }

    /// The bin of `value` in feature `feature`.
    pub fn bin(&self, feature: usize, value: f32) -> u8 {
        self.cuts[feature].partition_point(|cut| *cut < value) as u8
    }
}

/// Per-bin gradient and hessian sums.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    g: f64,
    h: f64,
}

struct Trainer<'a> {
    params: GbdtParams,
    inputs: usize,
    bins: &'a Bins,
    /// Row-major bin indices.
    binned: Vec<u8>,
    grad: Vec<f64>,
    hess: Vec<f64>,
    histogram: Vec<Cell>,
}

struct Split {
    feature: usize,
    bin: usize,
    gain: f64,
}

impl Trainer<'_> {
    fn leaf_value(&self, g: f64, h: f64) -> f32 {
        (-self.params.learning_rate * g / (h + self.params.lambda)) as f32
    }

    fn best_split(&mut self, rows: &[u32]) -> Option<Split> {
        let lambda = self.params.lambda;
        let mut best: Option<Split> = None;
        let (g_total, h_total) = rows.iter().fold((0.0, 0.0), |(g, h), &r| {
            (g + self.grad[r as usize], h + self.hess[r as usize])
        });
        let parent = g_total * g_total / (h_total + lambda);
        for feature in 0..self.inputs {
            let n_bins = self.bins.cuts[feature].len() + 1;
            if n_bins < 2 {
                continue;
            }
            let hist = &mut self.histogram[..n_bins];
            hist.fill(Cell::default());
            for &r in rows {
                let r = r as usize;
                let cell = &mut hist[usize::from(self.binned[r * self.inputs + feature])];
                cell.g += self.grad[r];
                cell.h += self.hess[r];
            }
            let (mut g_left, mut h_left) = (0.0, 0.0);
            // Split "bin <= k" for k in 0..n_bins-1 (the last bin cannot go left alone).
            for (k, cell) in hist.iter().enumerate().take(n_bins - 1) {
                g_left += cell.g;
                h_left += cell.h;
                let (g_right, h_right) = (g_total - g_left, h_total - h_left);
                if h_left < self.params.min_child_weight || h_right < self.params.min_child_weight {
                    continue;
                }
                let gain =
                    g_left * g_left / (h_left + lambda) + g_right * g_right / (h_right + lambda) - parent;
                if gain > self.params.min_split_gain && best.as_ref().is_none_or(|b| gain > b.gain) {
                    best = Some(Split {
                        feature,
                        bin: k,
                        gain,
                    });
                }
            }
        }
        best
    }

    /// Grows the subtree over `rows` at `depth`, appending its nodes to `nodes`; returns its index.
    fn grow(&mut self, rows: &mut [u32], depth: usize, nodes: &mut Vec<Node>) -> u32 {
        let index = nodes.len() as u32;
        let split = if depth < self.params.max_depth {
            self.best_split(rows)
        } else {
            None
        };
        let Some(split) = split else {
            let (g, h) = rows.iter().fold((0.0, 0.0), |(g, h), &r| {
                (g + self.grad[r as usize], h + self.hess[r as usize])
            });
            nodes.push(Node::leaf(self.leaf_value(g, h)));
            return index;
        };
        nodes.push(Node {
            feature: split.feature as u32,
            value: self.bins.cuts[split.feature][split.bin],
            left: 0,
            right: 0,
        });
        // Partition in place: rows going left first (stable order keeps training deterministic).
        let (inputs, feature, bin) = (self.inputs, split.feature, split.bin);
        let mut left: Vec<u32> = Vec::with_capacity(rows.len());
        let mut right: Vec<u32> = Vec::with_capacity(rows.len());
        for &r in rows.iter() {
            if usize::from(self.binned[r as usize * inputs + feature]) <= bin {
                left.push(r);
            } else {
                right.push(r);
            }
        }
        let cut = left.len();
        rows[..cut].copy_from_slice(&left);
        rows[cut..].copy_from_slice(&right);
        let (left_rows, right_rows) = rows.split_at_mut(cut);
        let left_index = self.grow(left_rows, depth + 1, nodes);
        let right_index = self.grow(right_rows, depth + 1, nodes);
        nodes[index as usize].left = left_index;
        nodes[index as usize].right = right_index;
        index
    }
}

fn logistic(score: f64) -> f64 {
    1.0 / (1.0 + (-score).exp())
}

/// Trains an ensemble. Rows with weight 0 take no part (they add nothing to any sum).
pub fn train(data: &Dataset<'_>, params: &GbdtParams) -> Result<TreeEnsemble, GbdtError> {
    data.validate()?;
    if params.trees == 0 {
        return Err(GbdtError::Params("trees must be at least 1"));
    }
    if !(2..=256).contains(&params.max_bins) {
        return Err(GbdtError::Params("max_bins must be within 2..=256"));
    }
    if !(params.learning_rate > 0.0 && params.lambda >= 0.0 && params.min_child_weight >= 0.0) {
        return Err(GbdtError::Params(
            "learning_rate must be positive, lambda and min_child_weight non-negative",
        ));
    }
    let rows = data.rows();
    let (mut w_sum, mut wy_sum) = (0.0_f64, 0.0_f64);
    for r in 0..rows {
        w_sum += f64::from(data.w[r]);
        wy_sum += f64::from(data.w[r] * data.y[r]);
    }
    if w_sum <= 0.0 {
        return Err(GbdtError::ZeroWeight);
    }
    if wy_sum <= 0.0 || wy_sum >= w_sum {
        return Err(GbdtError::OneClass);
    }
    let rate = wy_sum / w_sum;
    let base = (rate / (1.0 - rate)).ln() as f32;

    let bins = Bins::fit(data, params.max_bins);
    let mut binned = vec![0_u8; data.x.len()];
    for r in 0..rows {
        for f in 0..data.inputs {
            binned[r * data.inputs + f] = bins.bin(f, data.x[r * data.inputs + f]);
        }
    }
    let mut trainer = Trainer {
        params: *params,
        inputs: data.inputs,
        bins: &bins,
        binned,
        grad: vec![0.0; rows],
        hess: vec![0.0; rows],
        histogram: vec![Cell::default(); params.max_bins],
    };
    // Scores are kept as the f32 sum the exported model computes, so each tree fits the residual the
    // final model really has.
    let mut scores = vec![base; rows];
    let mut trees = Vec::with_capacity(params.trees);
    let active: Vec<u32> = (0..rows as u32).filter(|&r| data.w[r as usize] > 0.0).collect();
    for _ in 0..params.trees {
        for &r in &active {
            let r = r as usize;
            let p = logistic(f64::from(scores[r]));
            let w = f64::from(data.w[r]);
            trainer.grad[r] = w * (p - f64::from(data.y[r]));
            trainer.hess[r] = (w * p * (1.0 - p)).max(1e-16);
        }
        let mut rows_of_tree = active.clone();
        let mut nodes = Vec::new();
        trainer.grow(&mut rows_of_tree, 0, &mut nodes);
        let tree = TreeEnsemble::new(data.inputs, std::slice::from_ref(&nodes))?;
        for (score, row) in scores.iter_mut().zip(data.x.chunks_exact(data.inputs)) {
            *score += tree.score(row);
        }
        trees.push(nodes);
    }
    let mut ensemble = TreeEnsemble::new(data.inputs, &trees)?;
    ensemble.add_to_first_tree(base);
    Ok(ensemble)
}

/// Weighted mean log loss of probabilities `p` against labels `y` (probabilities clamped to 1e-7).
pub fn log_loss(p: &[f32], y: &[f32], w: &[f32]) -> f64 {
    let (mut total, mut weight) = (0.0, 0.0);
    for ((p, y), w) in p.iter().zip(y).zip(w) {
        let p = f64::from(*p).clamp(1e-7, 1.0 - 1e-7);
        let loss = if *y > 0.5 { -p.ln() } else { -(1.0 - p).ln() };
        total += f64::from(*w) * loss;
        weight += f64::from(*w);
    }
    if weight > 0.0 { total / weight } else { f64::NAN }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// `rows` rows of 4 inputs; y = 1 with probability sigmoid(3·x0 − 2·x1·(x2 > 0)).
    fn synthetic(rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(rows * 4);
        let mut y = Vec::with_capacity(rows);
        for _ in 0..rows {
            let row: [f32; 4] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
            let logit = 3.0 * f64::from(row[0]) - 2.0 * f64::from(row[1]) * f64::from(u8::from(row[2] > 0.0));
            y.push(if rng.random::<f64>() < logistic(logit) {
                1.0
            } else {
                0.0
            });
            x.extend_from_slice(&row);
        }
        (x, y)
    }

    fn auc(p: &[f32], y: &[f32]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (pi, yi) in p.iter().zip(y) {
            for (pj, yj) in p.iter().zip(y) {
                if *yi > 0.5 && *yj < 0.5 {
                    pairs += 1.0;
                    wins += if pi > pj {
                        1.0
                    } else if pi == pj {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        wins / pairs
    }

    #[test]
    fn learns_a_nonlinear_rule_and_generalises() {
        let (x, y) = synthetic(3000, 1);
        let w = vec![1.0; y.len()];
        let data = Dataset {
            inputs: 4,
            x: &x,
            y: &y,
            w: &w,
        };
        let params = GbdtParams {
            trees: 60,
            max_depth: 3,
            learning_rate: 0.1,
            ..GbdtParams::default()
        };
        let model = train(&data, &params).unwrap();
        assert_eq!(model.tree_count(), 60);
        assert!(model.max_depth() <= 3);
        let (xv, yv) = synthetic(1000, 2);
        let mut p = vec![0.0; yv.len()];
        model.probabilities(&xv, &mut p);
        // The Bayes-optimal AUC of this task is about 0.85; a constant model scores 0.5.
        let score = auc(&p, &yv);
        assert!(score > 0.78, "validation AUC {score}");
        let ones = vec![1.0; yv.len()];
        let rate = yv.iter().sum::<f32>() / yv.len() as f32;
        let constant = vec![rate; yv.len()];
        assert!(log_loss(&p, &yv, &ones) < log_loss(&constant, &yv, &ones) - 0.05);
    }

    #[test]
    fn training_loss_falls_with_every_tree() {
        let (x, y) = synthetic(800, 3);
        let w = vec![1.0; y.len()];
        let data = Dataset {
            inputs: 4,
            x: &x,
            y: &y,
            w: &w,
        };
        let mut previous = f64::INFINITY;
        for trees in [1, 5, 20, 40] {
            let model = train(
                &data,
                &GbdtParams {
                    trees,
                    ..GbdtParams::default()
                },
            )
            .unwrap();
            let mut p = vec![0.0; y.len()];
            model.probabilities(&x, &mut p);
            let loss = log_loss(&p, &y, &w);
            assert!(loss < previous, "{trees} trees: {loss} !< {previous}");
            previous = loss;
        }
    }

    #[test]
    fn a_single_stump_leaf_is_the_newton_step_from_the_base_rate() {
        // One feature separating two groups perfectly; with depth 1 and λ = 0 each leaf's score is the
        // base log-odds plus one Newton step of the logistic loss.
        let x = [0.0_f32, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let y = [0.0_f32, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let w = [1.0_f32; 8];
        let data = Dataset {
            inputs: 1,
            x: &x,
            y: &y,
            w: &w,
        };
        let params = GbdtParams {
            trees: 1,
            max_depth: 1,
            learning_rate: 1.0,
            lambda: 0.0,
            min_child_weight: 0.0,
            ..GbdtParams::default()
        };
        let model = train(&data, &params).unwrap();
        // Base rate 1/2 → base score 0, p = 0.5: left group G = Σ(p − y) = 4·0.5 − 1 = 1, H = 4·0.25 = 1,
        // so the left leaf is −1; the right group is the mirror, +1.
        assert!((model.score(&[0.0]) + 1.0).abs() < 1e-6);
        assert!((model.score(&[1.0]) - 1.0).abs() < 1e-6);
        let nodes: Vec<Node> = model.tree(0).collect();
        assert_eq!(nodes[0].feature, 0);
        assert_eq!(nodes[0].value, 0.5);
    }

    #[test]
    fn zero_weight_rows_change_nothing() {
        let (x, y) = synthetic(600, 4);
        let w = vec![1.0; y.len()];
        let params = GbdtParams {
            trees: 10,
            ..GbdtParams::default()
        };
        let base = train(
            &Dataset {
                inputs: 4,
                x: &x,
                y: &y,
                w: &w,
            },
            &params,
        )
        .unwrap();
        // The same rows plus noise rows of weight 0 whose values all repeat existing ones (so the bins,
        // built from distinct values, stay the same).
        let mut x2 = x.clone();
        let mut y2 = y.clone();
        let mut w2 = w.clone();
        for r in 0..100 {
            x2.extend_from_slice(&x[(r * 5 % 600) * 4..(r * 5 % 600) * 4 + 4]);
            y2.push(1.0 - y[r * 5 % 600]);
            w2.push(0.0);
        }
        let with_ignored = train(
            &Dataset {
                inputs: 4,
                x: &x2,
                y: &y2,
                w: &w2,
            },
            &params,
        )
        .unwrap();
        assert_eq!(base, with_ignored);
    }

    #[test]
    fn weights_act_like_repeated_rows() {
        let (x, y) = synthetic(300, 5);
        let w: Vec<f32> = (0..300).map(|r| if r % 3 == 0 { 2.0 } else { 1.0 }).collect();
        let params = GbdtParams {
            trees: 8,
            min_child_weight: 0.5,
            ..GbdtParams::default()
        };
        let weighted = train(
            &Dataset {
                inputs: 4,
                x: &x,
                y: &y,
                w: &w,
            },
            &params,
        )
        .unwrap();
        let (mut x2, mut y2) = (x.clone(), y.clone());
        for r in (0..300).step_by(3) {
            x2.extend_from_slice(&x[r * 4..r * 4 + 4]);
            y2.push(y[r]);
        }
        let ones = vec![1.0; y2.len()];
        let repeated = train(
            &Dataset {
                inputs: 4,
                x: &x2,
                y: &y2,
                w: &ones,
            },
            &params,
        )
        .unwrap();
        let mut by_weight = vec![0.0; 300];
        let mut by_repeat = vec![0.0; 300];
        weighted.probabilities(&x, &mut by_weight);
        repeated.probabilities(&x, &mut by_repeat);
        // Same splits and the same sums up to float summation order.
        for (a, b) in by_weight.iter().zip(&by_repeat) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        let p = GbdtParams::default();
        let one = [1.0_f32];
        assert_eq!(
            train(
                &Dataset {
                    inputs: 2,
                    x: &[1.0; 3],
                    y: &one,
                    w: &one
                },
                &p
            ),
            Err(GbdtError::Shape { values: 3, inputs: 2 })
        );
        assert_eq!(
            train(
                &Dataset {
                    inputs: 1,
                    x: &[],
                    y: &[],
                    w: &[]
                },
                &p
            ),
            Err(GbdtError::Empty)
        );
        assert_eq!(
            train(
                &Dataset {
                    inputs: 1,
                    x: &[1.0, 2.0],
                    y: &[1.0, 1.0],
                    w: &[1.0, 1.0]
                },
                &p
            ),
            Err(GbdtError::OneClass)
        );
        assert_eq!(
            train(
                &Dataset {
                    inputs: 1,
                    x: &[1.0, 2.0],
                    y: &[1.0, 0.5],
                    w: &[1.0, 1.0]
                },
                &p
            ),
            Err(GbdtError::BadValue {
                row: 1,
                what: "label"
            })
        );
        assert_eq!(
            train(
                &Dataset {
                    inputs: 1,
                    x: &[f32::NAN, 2.0],
                    y: &[1.0, 0.0],
                    w: &[1.0, 1.0]
                },
                &p
            ),
            Err(GbdtError::BadValue {
                row: 0,
                what: "input"
            })
        );
        assert_eq!(
            train(
                &Dataset {
                    inputs: 1,
                    x: &[1.0, 2.0],
                    y: &[1.0, 0.0],
                    w: &[0.0, 0.0]
                },
                &p
            ),
            Err(GbdtError::ZeroWeight)
        );
        assert!(matches!(
            train(
                &Dataset {
                    inputs: 1,
                    x: &[1.0, 2.0],
                    y: &[1.0, 0.0],
                    w: &[1.0, 1.0]
                },
                &GbdtParams { max_bins: 1, ..p }
            ),
            Err(GbdtError::Params(_))
        ));
    }

    #[test]
    fn training_is_deterministic() {
        let (x, y) = synthetic(400, 6);
        let w = vec![1.0; y.len()];
        let data = Dataset {
            inputs: 4,
            x: &x,
            y: &y,
            w: &w,
        };
        let params = GbdtParams {
            trees: 12,
            ..GbdtParams::default()
        };
        assert_eq!(train(&data, &params).unwrap(), train(&data, &params).unwrap());
    }

    proptest! {
        /// A split on bins is exactly the split its `f32` threshold makes: bin(x) <= k ⇔ x <= cuts[k],
        /// for training values and for any other value.
        #[test]
        fn bin_order_equals_threshold_order(
            values in prop::collection::vec(prop_oneof![-1e3..1e3_f32, Just(0.0_f32), Just(1.0_f32)], 1..200),
            probes in prop::collection::vec(-2e3..2e3_f32, 1..50),
            max_bins in 2..80_usize,
        ) {
            let y = vec![0.0; values.len()];
            let data = Dataset { inputs: 1, x: &values, y: &y, w: &y };
            let bins = Bins::fit(&data, max_bins);
            let cuts = &bins.cuts[0];
            prop_assert!(cuts.len() < max_bins);
            prop_assert!(cuts.windows(2).all(|w| w[0] < w[1]));
            for &x in values.iter().chain(&probes) {
                let bin = usize::from(bins.bin(0, x));
                for (k, cut) in cuts.iter().enumerate() {
                    prop_assert_eq!(bin <= k, x <= *cut, "x {} cut {} bin {} k {}", x, cut, bin, k);
                }
            }
        }
    }
}
