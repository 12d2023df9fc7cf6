//! Training for the dense networks of [`super::mlp`]: back-propagation, Adam, the usual losses, input
//! standardisation folded into the exported weights.
//!
//! Why this module exists: the neural models of issue 6 (the structure autoencoder, the feature
//! discovery network, the evolver's Q-network) are trained in-process, in Rust, on a 2-core box, and
//! exported to ONNX by [`Mlp::to_onnx`]. They are small (tens of thousands of weights), so a plain,
//! exact implementation is fast enough and keeps the dependency list short; what matters is that it is
//! right. The tests hold every gradient to finite differences and the batch gradient to the sum of the
//! single-row ones.
//!
//! The interface is low-level on purpose, because the models need different things from it:
//! [`Trainer::forward`] keeps the activations of a batch; [`Trainer::backward`] takes ∂loss/∂output
//! (so a DQN can put a gradient on the taken action only) and returns ∂loss/∂input (so the discovery
//! network can train its input gates); [`Trainer::apply`] takes one Adam step. [`Trainer::step`] and
//! [`fit`] do the common supervised case.

use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

use super::{
    MlError,
    mlp::{Dense, Mlp},
};

/// Adam's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// Decoupled weight decay (`AdamW`), applied to weights, not to biases.
    pub weight_decay: f32,
    /// Global gradient-norm cap per step; `None` for no clipping. Keeps one outlier batch (a large
    /// TD error, a rare feature value) from throwing the weights away.
    pub clip_norm: Option<f32>,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            clip_norm: Some(5.0),
        }
    }
}

/// Supervised losses over a batch; every one is the weighted mean over rows (and over outputs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// ½ (y − t)², summed over outputs.
    MeanSquared,
    /// Huber with this δ, summed over outputs: robust to the occasional large error (TD targets).
    Huber(f32),
    /// Binary cross-entropy on a logit output (one output per target in {0, 1}), computed from the
    /// logit directly so it never takes the log of 0.
    BinaryCrossEntropy,
}

impl Loss {
    /// The loss of one output and its derivative with respect to that output.
    fn value_and_grad(self, y: f32, target: f32) -> (f64, f32) {
        match self {
            Self::MeanSquared => {
                let d = y - target;
                (0.5 * f64::from(d) * f64::from(d), d)
            }
            Self::Huber(delta) => {
                let d = y - target;
                if d.abs() <= delta {
                    (0.5 * f64::from(d) * f64::from(d), d)
                } else {
                    (
                        f64::from(delta) * (f64::from(d.abs()) - 0.5 * f64::from(delta)),
                        delta * d.signum(),
                    )
                }
            }
            Self::BinaryCrossEntropy => {
                // log(1 + e^y) − t·y, stable for large |y|.
                let y64 = f64::from(y);
                let softplus = y64.max(0.0) + (-y64.abs()).exp().ln_1p();
                let loss = softplus - f64::from(target) * y64;
                (loss, sigmoid(y) - target)
            }
        }
    }
}

/// The logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A network being trained: the weights, Adam's moments, the activations of the last batch and the
/// accumulated gradient. Buffers are kept between steps.
#[derive(Debug, Clone)]
pub struct Trainer {
    mlp: Mlp,
    params: AdamParams,
    /// Adam step count (for the bias correction).
    steps: u64,
    /// First and second moments, shaped like the layers.
    moments: Vec<(Dense, Dense)>,
    /// The gradient being accumulated, shaped like the layers.
    grads: Vec<Dense>,
    /// `activations[0]` is the batch input; `activations[l + 1]` is layer `l`'s output (after `ReLU`
    /// for hidden layers).
    activations: Vec<Vec<f32>>,
    rows: usize,
    delta: Vec<f32>,
    delta_next: Vec<f32>,
    input_grad: Vec<f32>,
}

fn zeros_like(layer: &Dense) -> Dense {
    Dense {
        inputs: layer.inputs,
        outputs: layer.outputs,
        weights: vec![0.0; layer.weights.len()],
        bias: vec![0.0; layer.bias.len()],
    }
}

impl Trainer {
    pub fn new(mlp: Mlp, params: AdamParams) -> Self {
        let moments = mlp
            .layers()
            .iter()
            .map(|l| (zeros_like(l), zeros_like(l)))
            .collect();
        let grads = mlp.layers().iter().map(zeros_like).collect();
        let activations = vec![Vec::new(); mlp.layers().len() + 1];
        Self {
            mlp,
            params,
            steps: 0,
            moments,
            grads,
            activations,
            rows: 0,
            delta: Vec::new(),
            delta_next: Vec::new(),
            input_grad: Vec::new(),
        }
    }

    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    pub fn params(&self) -> AdamParams {
        self.params
    }

    pub fn set_learning_rate(&mut self, learning_rate: f32) {
        self.params.learning_rate = learning_rate;
    }

    /// The trained network, checked again (shapes, finite values).
    pub fn into_mlp(self) -> Result<Mlp, MlError> {
        Mlp::new(self.mlp.into_layers())
    }

    /// The forward pass of a row-major batch, keeping every layer's activations for [`Self::backward`].
    /// Returns the outputs (`rows × outputs`).
    pub fn forward(&mut self, input: &[f32]) -> Result<&[f32], MlError> {
        let width = self.mlp.inputs();
        if input.is_empty() || !input.len().is_multiple_of(width) {
            return Err(MlError::Shape(format!(
                "{} inputs is not a whole number of rows of {width}",
                input.len()
            )));
        }
        let rows = input.len() / width;
        self.rows = rows;
        self.activations[0].clear();
        self.activations[0].extend_from_slice(input);
        let last = self.mlp.layers().len() - 1;
        for (l, layer) in self.mlp.layers().iter().enumerate() {
            let (before, after) = self.activations.split_at_mut(l + 1);
            let x = &before[l];
            let y = &mut after[0];
            y.clear();
            y.resize(rows * layer.outputs, 0.0);
            for (row, out) in x
                .chunks_exact(layer.inputs)
                .zip(y.chunks_exact_mut(layer.outputs))
            {
                for (o, slot) in out.iter_mut().enumerate() {
                    let w = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
                    let sum = w.iter().zip(row).fold(0.0_f32, |s, (w, x)| s + w * x) + layer.bias[o];
                    *slot = if l < last { sum.max(0.0) } else { sum };
                }
            }
        }
        Ok(&self.activations[last + 1])
    }

    /// Back-propagates ∂loss/∂output of the last [`Self::forward`] batch (`rows × outputs`; the caller
    /// scales it, e.g. by 1/rows for a mean), **adds** the weight gradient to the accumulator and
    /// returns ∂loss/∂input (`rows × inputs`).
    pub fn backward(&mut self, output_grad: &[f32]) -> Result<&[f32], MlError> {
        let rows = self.rows;
        if rows == 0 || output_grad.len() != rows * self.mlp.outputs() {
            return Err(MlError::Shape(format!(
                "{} output gradients for the last batch of {rows} rows × {} outputs",
                output_grad.len(),
                self.mlp.outputs()
            )));
        }
        self.delta.clear();
        self.delta.extend_from_slice(output_grad);
        for l in (0..self.mlp.layers().len()).rev() {
            let layer = &self.mlp.layers()[l];
            let grad = &mut self.grads[l];
            let x = &self.activations[l];
            for (d_row, x_row) in self
                .delta
                .chunks_exact(layer.outputs)
                .zip(x.chunks_exact(layer.inputs))
            {
                for (o, &d) in d_row.iter().enumerate() {
                    if d == 0.0 {
                        continue;
                    }
                    grad.bias[o] += d;
                    let g = &mut grad.weights[o * layer.inputs..(o + 1) * layer.inputs];
                    for (g, &x) in g.iter_mut().zip(x_row) {
                        *g += d * x;
                    }
                }
            }
            // ∂loss/∂(this layer's input): through the weights, then through the previous layer's
            // ReLU (its output is this layer's input; the derivative is 1 where it was positive).
            self.delta_next.clear();
            self.delta_next.resize(rows * layer.inputs, 0.0);
            for ((d_row, next), x_row) in self
                .delta
                .chunks_exact(layer.outputs)
                .zip(self.delta_next.chunks_exact_mut(layer.inputs))
                .zip(x.chunks_exact(layer.inputs))
            {
                for (o, &d) in d_row.iter().enumerate() {
                    if d == 0.0 {
                        continue;
                    }
                    let w = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
                    for (n, &w) in next.iter_mut().zip(w) {
                        *n += d * w;
                    }
                }
                if l > 0 {
                    for (n, &x) in next.iter_mut().zip(x_row) {
                        if x <= 0.0 {
                            *n = 0.0;
                        }
                    }
                }
            }
            if l == 0 {
                std::mem::swap(&mut self.input_grad, &mut self.delta_next);
            } else {
                std::mem::swap(&mut self.delta, &mut self.delta_next);
            }
        }
        Ok(&self.input_grad)
    }

    /// The accumulated gradient (shaped like the layers), for tests and diagnostics.
    pub fn gradient(&self) -> &[Dense] {
        &self.grads
    }

    /// Clears the accumulated gradient without a step.
    pub fn zero_grad(&mut self) {
        for g in &mut self.grads {
            g.weights.fill(0.0);
            g.bias.fill(0.0);
        }
    }

    /// One Adam step with the accumulated gradient, then clears it. Refuses (and leaves the weights
    /// alone) a gradient that is not finite.
    pub fn apply(&mut self) -> Result<(), MlError> {
        let norm_sq: f64 = self
            .grads
            .iter()
            .flat_map(|g| g.weights.iter().chain(&g.bias))
            .map(|&g| f64::from(g) * f64::from(g))
            .sum();
        if !norm_sq.is_finite() {
            self.zero_grad();
            return Err(MlError::Shape("the gradient is not finite".into()));
        }
        let scale = match self.params.clip_norm {
            Some(cap) if norm_sq.sqrt() > f64::from(cap) => (f64::from(cap) / norm_sq.sqrt()) as f32,
            _ => 1.0,
        };
        self.steps += 1;
        let p = self.params;
        let t = i32::try_from(self.steps.min(1 << 20)).unwrap_or(i32::MAX);
        let correction1 = 1.0 - p.beta1.powi(t);
        let correction2 = 1.0 - p.beta2.powi(t);
        for ((layer, grad), (m, v)) in self
            .mlp
            .layers_mut()
            .iter_mut()
            .zip(&mut self.grads)
            .zip(&mut self.moments)
        {
            let update = |value: &mut f32, g: f32, m: &mut f32, v: &mut f32, decay: f32| {
                let g = g * scale;
                *m = p.beta1 * *m + (1.0 - p.beta1) * g;
                *v = p.beta2 * *v + (1.0 - p.beta2) * g * g;
                let step = (*m / correction1) / ((*v / correction2).sqrt() + p.epsilon);
                *value -= p.learning_rate * (step + decay * *value);
            };
            for (((w, g), m), v) in layer
                .weights
                .iter_mut()
                .zip(&grad.weights)
                .zip(&mut m.weights)
                .zip(&mut v.weights)
            {
                update(w, *g, m, v, p.weight_decay);
            }
            for (((b, g), m), v) in layer
                .bias
                .iter_mut()
                .zip(&grad.bias)
                .zip(&mut m.bias)
                .zip(&mut v.bias)
            {
                update(b, *g, m, v, 0.0);
            }
        }
        self.zero_grad();
        Ok(())
    }

    /// The loss of the last forward batch against `target` (`rows × outputs`), weighted per row
    /// (`None`: equal weights), as a weighted mean over rows; fills `grad` with ∂loss/∂output.
    pub fn loss(
        &self,
        target: &[f32],
        weights: Option<&[f32]>,
        loss: Loss,
        grad: &mut Vec<f32>,
    ) -> Result<f64, MlError> {
        let outputs = self.mlp.outputs();
        let y = &self.activations[self.activations.len() - 1];
        if target.len() != y.len() || weights.is_some_and(|w| w.len() != self.rows) {
            return Err(MlError::Shape(format!(
                "{} targets and {} weights for {} rows × {outputs} outputs",
                target.len(),
                weights.map_or(self.rows, <[f32]>::len),
                self.rows
            )));
        }
        let total_weight: f64 = weights.map_or(self.rows as f64, |w| w.iter().map(|&w| f64::from(w)).sum());
        if total_weight <= 0.0 {
            return Err(MlError::Shape("the rows' weights sum to zero".into()));
        }
        grad.clear();
        grad.resize(y.len(), 0.0);
        let mut sum = 0.0;
        for (r, ((y_row, t_row), g_row)) in y
            .chunks_exact(outputs)
            .zip(target.chunks_exact(outputs))
            .zip(grad.chunks_exact_mut(outputs))
            .enumerate()
        {
            let w = weights.map_or(1.0, |w| w[r]);
            let scale = (f64::from(w) / total_weight) as f32;
            for ((&y, &t), g) in y_row.iter().zip(t_row).zip(g_row.iter_mut()) {
                let (l, d) = loss.value_and_grad(y, t);
                sum += f64::from(w) * l;
                *g = d * scale;
            }
        }
        Ok(sum / total_weight)
    }

    /// One supervised step on a batch: forward, loss, backward, Adam. Returns the batch loss before
    /// the step.
    pub fn step(
        &mut self,
        input: &[f32],
        target: &[f32],
        weights: Option<&[f32]>,
        loss: Loss,
        grad: &mut Vec<f32>,
    ) -> Result<f64, MlError> {
        self.forward(input)?;
        let value = self.loss(target, weights, loss, grad)?;
        self.backward(grad)?;
        self.apply()?;
        Ok(value)
    }

    /// The loss over a whole set without training (in chunks, so memory stays bounded).
    pub fn evaluate(&mut self, x: &[f32], y: &[f32], w: Option<&[f32]>, loss: Loss) -> Result<f64, MlError> {
        let (inputs, outputs) = (self.mlp.inputs(), self.mlp.outputs());
        let rows = x.len() / inputs;
        let mut grad = Vec::new();
        let (mut sum, mut total) = (0.0, 0.0);
        for start in (0..rows).step_by(1024) {
            let end = (start + 1024).min(rows);
            self.forward(&x[start * inputs..end * inputs])?;
            let weights = w.map(|w| &w[start..end]);
            let part: f64 = weights.map_or((end - start) as f64, |w| w.iter().map(|&w| f64::from(w)).sum());
            sum += part * self.loss(&y[start * outputs..end * outputs], weights, loss, &mut grad)?;
            total += part;
        }
        Ok(if total > 0.0 { sum / total } else { 0.0 })
    }
}

/// How [`fit`] runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitParams {
    pub epochs: usize,
    pub batch: usize,
    pub loss: Loss,
    /// Seeds the shuffling of rows every epoch.
    pub seed: u64,
}

/// Minibatch training over `x` (`rows × inputs`) and `y` (`rows × outputs`) with optional row weights,
/// rows shuffled every epoch. Returns the mean training loss of each epoch. `progress` is told
/// `(epoch, loss)` after each epoch.
pub fn fit(
    trainer: &mut Trainer,
    x: &[f32],
    y: &[f32],
    w: Option<&[f32]>,
    params: &FitParams,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Vec<f64>, MlError> {
    let (inputs, outputs) = (trainer.mlp().inputs(), trainer.mlp().outputs());
    let rows = x.len() / inputs;
    if rows == 0
        || x.len() != rows * inputs
        || y.len() != rows * outputs
        || w.is_some_and(|w| w.len() != rows)
        || params.batch == 0
    {
        return Err(MlError::Shape(format!(
            "{} inputs, {} targets, {} weights, batch {} for rows of {inputs}→{outputs}",
            x.len(),
            y.len(),
            w.map_or(rows, <[f32]>::len),
            params.batch
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut order: Vec<usize> = (0..rows).collect();
    let (mut bx, mut by, mut bw, mut grad) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut history = Vec::with_capacity(params.epochs);
    for epoch in 0..params.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut count) = (0.0, 0.0);
        for chunk in order.chunks(params.batch) {
            bx.clear();
            by.clear();
            bw.clear();
            for &r in chunk {
                bx.extend_from_slice(&x[r * inputs..(r + 1) * inputs]);
                by.extend_from_slice(&y[r * outputs..(r + 1) * outputs]);
                bw.push(w.map_or(1.0, |w| w[r]));
            }
            if bw.iter().all(|&w| w <= 0.0) {
                continue;
            }
            let value = trainer.step(&bx, &by, Some(&bw), params.loss, &mut grad)?;
            sum += value * chunk.len() as f64;
            count += chunk.len() as f64;
        }
        let mean = if count > 0.0 { sum / count } else { 0.0 };
        history.push(mean);
        progress(epoch, mean);
    }
    Ok(history)
}

/// Per-column mean and standard deviation, fitted on training rows only, and folded into a network's
/// first (and optionally last) layer so the exported ONNX file takes and gives raw values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Fits on `rows × width`. A constant column gets std 1 (it then passes as `x − mean` = 0).
    pub fn fit(x: &[f32], width: usize) -> Self {
        let rows = x.len().checked_div(width).unwrap_or(0);
        let mut mean = vec![0.0_f64; width];
        let mut sq = vec![0.0_f64; width];
        for row in x.chunks_exact(width.max(1)).take(rows) {
            for (i, &v) in row.iter().enumerate() {
                mean[i] += f64::from(v);
                sq[i] += f64::from(v) * f64::from(v);
            }
        }
        let n = rows.max(1) as f64;
        let std = mean
            .iter()
            .zip(&sq)
            .map(|(&m, &s)| {
                let var = (s / n - (m / n) * (m / n)).max(0.0);
                let sd = var.sqrt();
                if sd > 1e-9 { sd as f32 } else { 1.0 }
            })
            .collect();
        Self {
            mean: mean.iter().map(|&m| (m / n) as f32).collect(),
            std,
        }
    }

    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// `(x − mean) / std`, in place, for every row.
    pub fn apply(&self, x: &mut [f32]) {
        for row in x.chunks_exact_mut(self.width().max(1)) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// The network that gives on raw rows what `mlp` gives on standardised rows: the first layer's
    /// weights divided by the column's std, its bias less the weighted means.
    pub fn fold_input(&self, mlp: Mlp) -> Result<Mlp, MlError> {
        let mut layers = mlp.into_layers();
        let first = &mut layers[0];
        if first.inputs != self.width() {
            return Err(MlError::Shape(format!(
                "standardizer of {} columns for a network of {} inputs",
                self.width(),
                first.inputs
            )));
        }
        for o in 0..first.outputs {
            let w = &mut first.weights[o * first.inputs..(o + 1) * first.inputs];
            let mut shift = 0.0_f32;
            for ((w, m), s) in w.iter_mut().zip(&self.mean).zip(&self.std) {
                *w /= s;
                shift += *w * m;
            }
            first.bias[o] -= shift;
        }
        Mlp::new(layers)
    }

    /// The network whose outputs are `mlp`'s (standardised) outputs mapped back to raw values:
    /// `y · std + mean` folded into the last layer.
    pub fn fold_output(&self, mlp: Mlp) -> Result<Mlp, MlError> {
        let mut layers = mlp.into_layers();
        let last = layers.len() - 1;
        let layer = &mut layers[last];
        if layer.outputs != self.width() {
            return Err(MlError::Shape(format!(
                "standardizer of {} columns for a network of {} outputs",
                self.width(),
                layer.outputs
            )));
        }
        for o in 0..layer.outputs {
            for w in &mut layer.weights[o * layer.inputs..(o + 1) * layer.inputs] {
                *w *= self.std[o];
            }
            layer.bias[o] = layer.bias[o] * self.std[o] + self.mean[o];
        }
        Mlp::new(layers)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use proptest::prelude::*;
    use rand::Rng;

    use super::*;

    fn rows(seed: u64, n: usize, width: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * width).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    /// Weighted loss of `mlp` on a batch, computed from scratch in f64 for finite differences.
    fn batch_loss(mlp: &Mlp, x: &[f32], t: &[f32], w: &[f32], loss: Loss) -> f64 {
        let mut out = vec![0.0; t.len()];
        mlp.forward(x, &mut out).unwrap();
        let outputs = mlp.outputs();
        let total: f64 = w.iter().map(|&w| f64::from(w)).sum();
        out.chunks_exact(outputs)
            .zip(t.chunks_exact(outputs))
            .zip(w)
            .map(|((y, t), &w)| {
                f64::from(w)
                    * y.iter()
                        .zip(t)
                        .map(|(&y, &t)| loss.value_and_grad(y, t).0)
                        .sum::<f64>()
            })
            .sum::<f64>()
            / total
    }

    fn with_weight(mlp: &Mlp, layer: usize, index: usize, bias: bool, delta: f32) -> Mlp {
        let mut layers = mlp.clone().into_layers();
        if bias {
            layers[layer].bias[index] += delta;
        } else {
            layers[layer].weights[index] += delta;
        }
        Mlp::new(layers).unwrap()
    }

    #[test]
    fn every_gradient_matches_finite_differences() {
        for loss in [Loss::MeanSquared, Loss::Huber(0.5), Loss::BinaryCrossEntropy] {
            let mlp = Mlp::seeded(&[4, 6, 5, 2], 11).unwrap();
            let x = rows(1, 5, 4);
            let t: Vec<f32> = match loss {
                Loss::BinaryCrossEntropy => (0..10).map(|i| f32::from(u8::from(i % 3 == 0))).collect(),
                _ => rows(2, 5, 2),
            };
            let w = [1.0, 0.5, 2.0, 1.0, 0.25];
            let mut trainer = Trainer::new(mlp.clone(), AdamParams::default());
            trainer.forward(&x).unwrap();
            let mut grad = Vec::new();
            trainer.loss(&t, Some(&w), loss, &mut grad).unwrap();
            trainer.backward(&grad).unwrap();
            let h = 1e-2_f32;
            for (l, g) in trainer.gradient().iter().enumerate() {
                for (bias, values) in [(false, &g.weights), (true, &g.bias)] {
                    for (i, &analytic) in values.iter().enumerate() {
                        let up = batch_loss(&with_weight(&mlp, l, i, bias, h), &x, &t, &w, loss);
                        let down = batch_loss(&with_weight(&mlp, l, i, bias, -h), &x, &t, &w, loss);
                        let numeric = (up - down) / (2.0 * f64::from(h));
                        assert!(
                            (numeric - f64::from(analytic)).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                            "{loss:?} layer {l} {} {i}: numeric {numeric}, analytic {analytic}",
                            if bias { "bias" } else { "weight" }
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_input_gradient_matches_finite_differences() {
        let mlp = Mlp::seeded(&[3, 8, 2], 3).unwrap();
        let x = rows(4, 2, 3);
        let t = rows(5, 2, 2);
        let w = [1.0, 1.0];
        let mut trainer = Trainer::new(mlp.clone(), AdamParams::default());
        trainer.forward(&x).unwrap();
        let mut grad = Vec::new();
        trainer.loss(&t, None, Loss::MeanSquared, &mut grad).unwrap();
        let input_grad = trainer.backward(&grad).unwrap().to_vec();
        for i in 0..x.len() {
            let h = 1e-2;
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (batch_loss(&mlp, &up, &t, &w, Loss::MeanSquared)
                - batch_loss(&mlp, &down, &t, &w, Loss::MeanSquared))
                / (2.0 * f64::from(h));
            assert!(
                (numeric - f64::from(input_grad[i])).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                "input {i}: numeric {numeric}, analytic {}",
                input_grad[i]
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// The gradient of a batch equals the sum of its rows' gradients (each row back-propagated
        /// alone with the same output gradient).
        #[test]
        fn batch_gradient_is_the_sum_of_row_gradients(seed in 0_u64..1000, n in 1_usize..6) {
            let mlp = Mlp::seeded(&[3, 5, 2], seed).unwrap();
            let x = rows(seed + 1, n, 3);
            let g = rows(seed + 2, n, 2);
            let mut batch = Trainer::new(mlp.clone(), AdamParams::default());
            batch.forward(&x).unwrap();
            batch.backward(&g).unwrap();
            let mut single = Trainer::new(mlp, AdamParams::default());
            for r in 0..n {
                single.forward(&x[r * 3..(r + 1) * 3]).unwrap();
                single.backward(&g[r * 2..(r + 1) * 2]).unwrap();
            }
            for (a, b) in batch.gradient().iter().zip(single.gradient()) {
                for (a, b) in a.weights.iter().chain(&a.bias).zip(b.weights.iter().chain(&b.bias)) {
                    prop_assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn fit_learns_xor_with_cross_entropy() {
        let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
        let y = [0.0, 1.0, 1.0, 0.0];
        let mut trainer = Trainer::new(
            Mlp::seeded(&[2, 16, 1], 1).unwrap(),
            AdamParams {
                learning_rate: 0.03,
                ..AdamParams::default()
            },
        );
        let history = fit(
            &mut trainer,
            &x,
            &y,
            None,
            &FitParams {
                epochs: 600,
                batch: 4,
                loss: Loss::BinaryCrossEntropy,
                seed: 1,
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert!(history[history.len() - 1] < 0.1 * history[0], "{history:?}");
        let mlp = trainer.into_mlp().unwrap();
        let mut out = [0.0; 4];
        mlp.forward(&x, &mut out).unwrap();
        for (logit, want) in out.iter().zip(y) {
            assert_eq!(sigmoid(*logit) > 0.5, want > 0.5, "{out:?}");
        }
    }

    #[test]
    fn weights_steer_the_fit() {
        // The same input with two targets: the fit goes to the heavier one.
        let x = [1.0, 1.0];
        let y = [0.0, 10.0];
        let w = [9.0, 1.0];
        let mut trainer = Trainer::new(
            Mlp::seeded(&[1, 1], 2).unwrap(),
            AdamParams {
                learning_rate: 0.05,
                clip_norm: None,
                ..AdamParams::default()
            },
        );
        let params = FitParams {
            epochs: 2000,
            batch: 2,
            loss: Loss::MeanSquared,
            seed: 3,
        };
        fit(&mut trainer, &x, &y, Some(&w), &params, &mut |_, _| {}).unwrap();
        let mut out = [0.0];
        trainer.mlp().forward(&[1.0], &mut out).unwrap();
        assert!((out[0] - 1.0).abs() < 0.05, "weighted mean is 1, got {}", out[0]);
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let x = rows(7, 64, 4);
        let y: Vec<f32> = x.chunks_exact(4).map(|r| r[0] * r[1] - r[2]).collect();
        let run = || {
            let mut trainer = Trainer::new(Mlp::seeded(&[4, 8, 1], 5).unwrap(), AdamParams::default());
            let params = FitParams {
                epochs: 5,
                batch: 16,
                loss: Loss::MeanSquared,
                seed: 9,
            };
            fit(&mut trainer, &x, &y, None, &params, &mut |_, _| {}).unwrap();
            trainer.into_mlp().unwrap()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn a_non_finite_gradient_is_refused_and_the_weights_kept() {
        let mlp = Mlp::seeded(&[2, 1], 1).unwrap();
        let mut trainer = Trainer::new(mlp.clone(), AdamParams::default());
        trainer.forward(&[1.0, 1.0]).unwrap();
        trainer.backward(&[f32::NAN]).unwrap();
        assert!(trainer.apply().is_err());
        assert_eq!(trainer.mlp(), &mlp);
        assert!(trainer.backward(&[1.0, 2.0]).is_err(), "shape checked");
    }

    #[test]
    fn folded_standardisation_gives_the_same_outputs_on_raw_rows() {
        let mut raw = rows(3, 50, 3);
        for row in raw.chunks_exact_mut(3) {
            row[0] = row[0] * 100.0 + 5_000.0;
            row[2] = 7.0; // constant column
        }
        let scaler = Standardizer::fit(&raw, 3);
        assert_eq!(scaler.std[2], 1.0);
        let mlp = Mlp::seeded(&[3, 4, 3], 8).unwrap();
        let mut standardised = raw.clone();
        scaler.apply(&mut standardised);
        let (mut want, mut got) = (vec![0.0; 150], vec![0.0; 150]);
        mlp.forward(&standardised, &mut want).unwrap();
        let folded = scaler.fold_input(mlp.clone()).unwrap();
        folded.forward(&raw, &mut got).unwrap();
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // Output side: y·std + mean.
        let unfolded = scaler.fold_output(mlp.clone()).unwrap();
        unfolded.forward(&standardised, &mut got).unwrap();
        for (r, (a, b)) in want.chunks_exact(3).zip(got.chunks_exact(3)).enumerate() {
            for i in 0..3 {
                let expect = a[i] * scaler.std[i] + scaler.mean[i];
                assert!(
                    (expect - b[i]).abs() <= 1e-2,
                    "row {r} col {i}: {expect} vs {}",
                    b[i]
                );
            }
        }
        assert!(scaler.fold_input(Mlp::seeded(&[2, 1], 1).unwrap()).is_err());
    }
}
