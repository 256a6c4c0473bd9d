//! Helpers of label parsing: booleans, durations, "did you mean" hints,
//! and picking one value among the spellings (with a warning when they
//! disagree).

/// `true/1/yes/on` or `false/0/no/off`, any case.
pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A duration: `500ms`, `30s`, `2m`, or plain seconds.
pub(super) fn parse_duration(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    let (number, unit) = v
        .find(|c: char| !c.is_ascii_digit())
        .map_or((v, "s"), |i| (&v[..i], &v[i..]));
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(std::time::Duration::from_millis(n)),
        "s" => Some(std::time::Duration::from_secs(n)),
        "m" => Some(std::time::Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// The closest own key, for "did you mean" hints (edit distance ≤ 2).
pub(super) fn closest(key: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    super::OWN_KEYS
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Takes the first of `(source, value)` candidates and warns when a
/// later one disagrees. Sources are `&str`, or `String` where a name in
/// the key makes them (`traefik.http.middlewares.<m>.…`).
pub(super) fn pick<K: AsRef<str>, T: PartialEq + std::fmt::Debug + Clone>(
    what: &str,
    candidates: &[(K, Option<T>)],
    warnings: &mut Vec<String>,
) -> Option<T> {
    let set: Vec<(&str, T)> = candidates
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.as_ref(), v)))
        .collect();
    let (first_key, first) = set.first()?.clone();
    for (k, v) in &set[1..] {
        if *v != first {
            warnings.push(format!(
                "{what}: {first_key}={first:?} and {k}={v:?} disagree; using {first_key}"
            ));
        }
    }
    Some(first)
}
