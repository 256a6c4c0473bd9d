//! When to act on a certificate: renew inside the window the CA suggests
//! (ARI, RFC 9773) when it offers one, else at two thirds of the
//! certificate's lifetime, a little earlier for each manager and each
//! name (jitter, so that certificates issued together are not all renewed
//! in the same minute); retry a failure with exponential back-off.
//!
//! Pure functions of times in Unix seconds, so they are tested without
//! waiting.

use rand::Rng as _;

/// The longest wait between two attempts after failures.
pub const MAX_BACKOFF_SECS: u64 = 3600;

/// When to renew a certificate valid from `not_before` to `not_after`
/// without advice from the CA: at two thirds of its lifetime, less a
/// random share of up to a twentieth of it.
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    let jitter = if lifetime >= 20 {
        rand::rng().random_range(0..lifetime / 20)
    } else {
        0
    };
    not_before + lifetime * 2 / 3 - jitter
}

/// When to renew inside the CA's suggested window `[start, end]`: a
/// uniformly random moment of it (RFC 9773 §4.2), and `now` when the
/// window is already open at its end.
pub fn in_window(start: i64, end: i64, now: i64) -> i64 {
    if end <= start {
        return start.max(now);
    }
    let at = rand::rng().random_range(start..end);
    at.max(now.min(end))
}

/// How long to wait after the `failures`-th failure in a row (1, 2, …):
/// `base` doubled each time, capped at [`MAX_BACKOFF_SECS`], give or take
/// a fifth.
pub fn backoff(base_secs: u64, failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(16);
    let wait = base_secs.saturating_mul(1 << exp).clamp(1, MAX_BACKOFF_SECS);
    let spread = wait / 5;
    if spread == 0 {
        return wait;
    }
    wait - spread + rand::rng().random_range(0..=2 * spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thirds_of_the_lifetime_never_later() {
        // 90 days.
        let (nb, na) = (1_000_000, 1_000_000 + 90 * 86_400);
        for _ in 0..100 {
            let at = renew_at(nb, na);
            assert!(at <= nb + 60 * 86_400, "{at}");
            assert!(at > nb + 60 * 86_400 - 90 * 86_400 / 20, "{at}");
        }
        assert_eq!(renew_at(10, 10), 10);
    }

    #[test]
    fn inside_the_suggested_window() {
        for _ in 0..100 {
            let at = in_window(100, 200, 50);
            assert!((100..200).contains(&at), "{at}");
        }
        // Already open: not before now.
        for _ in 0..100 {
            let at = in_window(100, 200, 150);
            assert!((150..200).contains(&at), "{at}");
        }
        assert_eq!(in_window(100, 100, 50), 100);
        assert_eq!(in_window(100, 90, 300), 300);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        for _ in 0..50 {
            let first = backoff(60, 1);
            assert!((48..=72).contains(&first), "{first}");
            let third = backoff(60, 3);
            assert!((192..=288).contains(&third), "{third}");
            let late = backoff(60, 40);
            assert!((2880..=4320).contains(&late), "{late}");
        }
        assert_eq!(backoff(0, 1), 1);
    }
}
