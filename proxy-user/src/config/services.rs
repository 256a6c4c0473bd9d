//! Where the static services come from: the `--backend` flags and the
//! `--config` file, read at start and again on SIGHUP and the admin API's
//! reload action (a file that no longer parses is refused and the running
//! services stay).

use std::path::PathBuf;

use crate::{cli::ServiceArgs, error::FieldError, services::ServicesConfig};

/// The source of the static services.
#[derive(Debug, Clone, PartialEq)]
pub enum ServicesSource {
    /// The flags of `run`.
    Flags {
        /// `--config`.
        file: Option<PathBuf>,
        /// `--backend NAME=URL`.
        backends: Vec<String>,
        /// `--cookie-name`.
        cookie_name: Option<String>,
        /// `--docker`: services may all come from Docker.
        docker: bool,
    },
    /// Services given whole (the demo): a reload changes nothing.
    Fixed(ServicesConfig),
}

impl ServicesSource {
    /// The source the flags name.
    pub fn from_args(args: &ServiceArgs, docker: bool) -> Self {
        Self::Flags {
            file: args.config.clone(),
            backends: args.backends.clone(),
            cookie_name: args.cookie_name.clone(),
            docker,
        }
    }

    /// Reads and validates the services.
    ///
    /// # Errors
    /// The first invalid flag or field, named (`--backend[2]: …`,
    /// `services[0].rule: …`), or a file that cannot be read.
    pub fn load(&self) -> Result<ServicesConfig, FieldError> {
        match self {
            Self::Flags {
                file,
                backends,
                cookie_name,
                docker,
            } => crate::services::from_flags(file.as_deref(), backends, cookie_name.as_deref(), *docker),
            Self::Fixed(services) => Ok(services.clone()),
        }
    }
}
