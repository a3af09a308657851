//! The one error type of wgrad: every fallible call returns [`Result`].

use thiserror::Error;

/// Everything that can go wrong in wgrad, with a message that names the culprit.
#[derive(Debug, Error)]
pub enum Error {
    /// No GPU or CPU adapter could be found.
    #[error("no wgpu adapter found ({0}). On Linux without a GPU install Mesa's CPU Vulkan driver (lavapipe): `sudo apt-get install mesa-vulkan-drivers` (Debian/Ubuntu)")]
    NoAdapter(String),
    /// The device could not be created from the adapter.
    #[error("could not create a device on adapter {adapter}: {reason}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// An op was given operands of incompatible shapes (or bad attributes).
    #[error("{op}: {msg}")]
    Shape {
        /// The op being added, e.g. `matmul`.
        op: &'static str,
        /// What is wrong, naming the shapes.
        msg: String,
    },
    /// The inputs fed to a graph do not match its input variables.
    #[error("feed: {0}")]
    Feed(String),
    /// A tensor or buffer is larger than the adapter allows.
    #[error("{what} needs {bytes} bytes but the adapter allows at most {limit} ({adapter})")]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Requested size in bytes.
        bytes: u64,
        /// The adapter's limit in bytes.
        limit: u64,
        /// Adapter name.
        adapter: String,
    },
    /// A request that makes no sense for the graph (unknown node, nothing to differentiate…).
    #[error("{0}")]
    Invalid(String),
    /// The GPU reported an error while running or reading back.
    #[error("gpu: {0}")]
    Gpu(String),
    /// A training step produced a non-finite value (the numerics guard); that step, and any
    /// step run after it and before this error was read, updated no parameter.
    #[error("step {step}: non-finite {what}; the step's update was not applied")]
    NonFinite {
        /// The training step (1-based, as [`crate::Executor::step`] counts).
        step: u64,
        /// Where it was seen: the loss, a parameter's gradient or its update.
        what: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Shape`].
pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        msg: msg.into(),
    })
}
