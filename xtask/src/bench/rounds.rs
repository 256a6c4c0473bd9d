//! Figures over the rounds of a benchmark: the median, and the median with
//! the lowest and highest as the spread.

/// The median of `values` (sorted in place); `None` when empty.
pub(super) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    })
}

/// "median (lowest–highest)" of `values`, two decimals; "-" when empty.
pub(super) fn spread(values: &mut [f64]) -> String {
    match median(values) {
        Some(m) => format!("{m:.2} ({:.2}–{:.2})", values[0], values[values.len() - 1]),
        None => "-".into(),
    }
}
