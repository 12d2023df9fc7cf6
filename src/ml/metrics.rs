//! Scores of probabilistic predictions: AUC, log loss, Brier score, calibration bins.
//!
//! Why separate: the same functions judge a model at training time and (later) a challenger against the
//! champion, so they must be right once; each is checked against a hand-computed case.

use super::predictor::CalibrationBin;

/// Area under the ROC curve of `p` for labels `y` (1 positive, 0 negative); ties count one half. `None`
/// when one class is missing.
pub fn auc(p: &[f32], y: &[f32]) -> Option<f64> {
    let mut order: Vec<usize> = (0..p.len().min(y.len())).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    // Mann–Whitney U from average ranks over tied groups.
    let mut rank_sum_positive = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && p[order[end]] == p[order[start]] {
            end += 1;
        }
        let average_rank = (start + end + 1) as f64 / 2.0; // ranks start..end are start+1..=end
        for &i in &order[start..end] {
            if y[i] > 0.5 {
                rank_sum_positive += average_rank;
            }
        }
        start = end;
    }
    let positives = order.iter().filter(|&&i| y[i] > 0.5).count() as f64;
    let negatives = order.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    Some((rank_sum_positive - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Mean log loss (probabilities clamped to `[1e-7, 1 − 1e-7]`).
pub fn log_loss(p: &[f32], y: &[f32]) -> f64 {
    let ones = vec![1.0_f32; p.len()];
    super::gbdt::log_loss(p, y, &ones)
}

/// Mean squared error of the probabilities.
pub fn brier(p: &[f32], y: &[f32]) -> f64 {
    let n = p.len().min(y.len());
    if n == 0 {
        return f64::NAN;
    }
    p.iter()
        .zip(y)
        .map(|(p, y)| (f64::from(*p) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / n as f64
}

/// `bins` equal-width bins over `[0, 1]`; empty bins are left out.
pub fn calibration(p: &[f32], y: &[f32], bins: usize) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut sums = vec![(0_usize, 0.0_f64, 0.0_f64); bins];
    for (p, y) in p.iter().zip(y) {
        let index = ((f64::from(*p) * bins as f64) as usize).min(bins - 1);
        sums[index].0 += 1;
        sums[index].1 += f64::from(*p);
        sums[index].2 += f64::from(*y);
    }
    sums.into_iter()
        .enumerate()
        .filter(|(_, (count, ..))| *count > 0)
        .map(|(i, (count, predicted, observed))| CalibrationBin {
            lo: i as f64 / bins as f64,
            hi: (i + 1) as f64 / bins as f64,
            count,
            mean_predicted: predicted / count as f64,
            observed_rate: observed / count as f64,
        })
        .collect()
}

/// The calibration table of a training report: a heading, then one line per bin (range, mean predicted
/// probability -> observed rate, count).
pub fn write_calibration(out: &mut String, bins: &[CalibrationBin]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "calibration (predicted -> observed, count):");
    for bin in bins {
        let _ = writeln!(
            out,
            "  [{:.1}, {:.1})  {:.3} -> {:.3}  {}",
            bin.lo, bin.hi, bin.mean_predicted, bin.observed_rate, bin.count
        );
    }
}

/// Mean of `values`, NaN when empty.
pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0_usize), |(s, c), v| (s + v, c + 1));
    if count == 0 { f64::NAN } else { sum / count as f64 }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_half_ties() {
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]), Some(0.75));
        assert_eq!(auc(&[0.9, 0.1], &[1.0, 0.0]), Some(1.0));
        assert_eq!(auc(&[0.1, 0.9], &[1.0, 0.0]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5, 0.5], &[1.0, 0.0, 0.0]), Some(0.5));
        // One tie between a positive and a negative among four pairs: (3 + 0.5) / 4.
        assert_eq!(auc(&[0.2, 0.5, 0.5, 0.9], &[0.0, 0.0, 1.0, 1.0]), Some(0.875));
        assert_eq!(auc(&[0.2, 0.3], &[1.0, 1.0]), None);
    }

    #[test]
    fn losses_and_calibration_by_hand() {
        let p = [0.8_f32, 0.2, 0.6, 0.05];
        let y = [1.0_f32, 0.0, 0.0, 0.0];
        let expected = -(0.8_f64.ln() + 0.8_f64.ln() + 0.4_f64.ln() + 0.95_f64.ln()) / 4.0;
        assert!((log_loss(&p, &y) - expected).abs() < 1e-6);
        let expected_brier = (0.04 + 0.04 + 0.36 + 0.0025) / 4.0;
        assert!((brier(&p, &y) - expected_brier).abs() < 1e-6);
        let bins = calibration(&p, &y, 2);
        assert_eq!(bins.len(), 2);
        assert_eq!((bins[0].count, bins[1].count), (2, 2));
        assert!((bins[0].mean_predicted - 0.125).abs() < 1e-6);
        assert_eq!(bins[0].observed_rate, 0.0);
        assert!((bins[1].mean_predicted - 0.7).abs() < 1e-6);
        assert_eq!(bins[1].observed_rate, 0.5);
        assert_eq!(calibration(&[1.0], &[1.0], 10)[0].lo, 0.9);
        assert!(mean([]).is_nan());
        assert_eq!(mean([1.0, 2.0]), 1.5);
    }
}
