//! Error helpers shared by every layer: an error's chain of causes on one
//! line, and the error of one configuration field.

/// Formats an error with its sources joined by `: `, as anyhow's `{:#}`
/// does, for library code that logs an error it handled.
pub fn chain<'a>(err: &'a (dyn std::error::Error + 'static)) -> impl std::fmt::Display + 'a {
    struct Chain<'a>(&'a (dyn std::error::Error + 'static));
    impl std::fmt::Display for Chain<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)?;
            let mut cur = self.0.source();
            while let Some(e) = cur {
                write!(f, ": {e}")?;
                cur = e.source();
            }
            Ok(())
        }
    }
    Chain(err)
}

/// A configuration value that is not acceptable, naming where it came
/// from: a flag (`--backend[2]`), a file field (`services[1].cookie.name`)
/// or a label (`swarm-sticky.cookie.name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Where the value came from.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_names_every_cause() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&err).to_string(), "outer: inner");
        assert_eq!(FieldError::new("--x", "bad").to_string(), "--x: bad");
    }
}
