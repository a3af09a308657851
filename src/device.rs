//! The device context: adapter, device, queue, compiled pipelines and counters.
//!
//! Create one [`Context`] and pass it by reference. The adapter is chosen by wgpu's
//! environment variables when set (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), otherwise a real GPU is
//! preferred over a CPU adapter such as Mesa's lavapipe.
//!
//! Device errors are `Result`s: buffers and pipelines are created inside error scopes (out of
//! memory and validation errors name what was being made); any other error wgpu reports, and
//! the loss of the device, are kept and returned by the next call that submits or waits;
//! after a device loss every such call fails at once. Readback waits have a timeout.
//!
//! ```no_run
//! use wgrad::{Context, ContextOptions};
//! # fn main() -> wgrad::Result<()> {
//! // WGPU_BACKEND=gl or WGPU_ADAPTER_NAME=llvmpipe pick another adapter.
//! let ctx = Context::with_options(ContextOptions { check_numerics: true, ..Default::default() })?;
//! let a = ctx.adapter();
//! println!("{} ({:?}), CPU adapter: {}", a.name, a.backend, ctx.is_cpu());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::dtype::DType;
use crate::{Error, Result};

/// Size of one kernel's parameter block in the uniform buffer (also its alignment).
pub(crate) const PARAMS_SIZE: u64 = 256;

/// Options for [`Context::with_options`].
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Never use subgroup operations, even where the adapter offers them.
    pub no_subgroups: bool,
    /// When matrix products on CPU adapters read their operands from textures.
    pub textures: OperandTextures,
    /// Fill every buffer a plan writes with NaN before each kernel writes it, so that an
    /// element a kernel forgets to write shows up in tests. Costs one extra dispatch per op.
    pub poison: bool,
    /// After every op, check its value for NaN and infinities; a call that produced one is
    /// an error naming the first such op (debugging: one extra dispatch per op and one extra
    /// readback per call). Also on with `WGRAD_CHECK_NUMERICS=1`.
    pub check_numerics: bool,
    /// How long a readback may wait for the device before it is an error (default: 10
    /// minutes, or `WGRAD_READBACK_TIMEOUT_S`).
    pub readback_timeout: Option<std::time::Duration>,
    /// How LSTMs run (also `WGRAD_LSTM=scan` or `steps`).
    pub lstm: LstmKernels,
}

/// How an LSTM's recurrence runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LstmKernels {
    /// One step at a time on CPU adapters for 32 hidden units or more; one scan kernel
    /// otherwise.
    #[default]
    Auto,
    /// One kernel looping over the steps (workgroups own sequences).
    Scan,
    /// Per step, the recurrent product through the tuned matmul kernels and a cell kernel,
    /// recorded once and replayed for every step.
    Steps,
}

/// When matrix products on CPU adapters copy their operands into textures and read them
/// from there (lavapipe fetches texels far faster than it loads from storage buffers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OperandTextures {
    /// Where it pays: where B is read 4 floats per texel.
    #[default]
    Auto,
    /// Never: operands are read from storage buffers.
    Never,
    /// Wherever the operands fit, even where B is read a float at a time (for tests).
    Always,
}

/// A device fault [`Context::inject_fault`] causes (for tests of error handling).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A buffer the device rejects, made inside an error scope.
    InvalidBuffer,
    /// The same outside any scope: wgpu's uncaptured-error handler sees it.
    UncapturedError,
    /// Destroys the device.
    LoseDevice,
}

/// What the chosen adapter is.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The backend, e.g. `Vulkan`.
    pub backend: wgpu::Backend,
    /// Discrete GPU, integrated GPU, CPU…
    pub device_type: wgpu::DeviceType,
    /// The driver, e.g. `llvmpipe`.
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}, driver {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

/// The GPU device and everything shared across graphs: created once, passed by reference.
/// Cloning is cheap and shares the device, the pipeline cache and the counters.
#[derive(Clone)]
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    summary: AdapterSummary,
    pub(crate) options: ContextOptions,
    /// The subgroup size when subgroup operations are enabled and the size is fixed.
    pub(crate) subgroup: Option<u32>,
    /// Compiled pipelines by their key (the kernels module names them).
    pipelines: Arc<Mutex<HashMap<String, wgpu::ComputePipeline>>>,
    /// Parsed shader modules by WGSL file name.
    modules: Arc<Mutex<HashMap<&'static str, wgpu::ShaderModule>>>,
    buffers_created: Arc<AtomicU64>,
    submits: Arc<AtomicU64>,
    /// Errors wgpu reported outside any error scope, returned by the next check.
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Why the device was lost, once it is.
    lost: Arc<Mutex<Option<String>>>,
    memory: Arc<MemoryCounter>,
}

/// Live GPU buffers created by wgrad and their bytes (see [`Context::memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Buffers alive now.
    pub buffers: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Counts buffers as they are created and dropped.
#[derive(Debug, Default)]
pub(crate) struct MemoryCounter {
    buffers: AtomicU64,
    bytes: AtomicU64,
}

impl Context {
    /// Opens the adapter wgpu's environment asks for, or the best one present.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when no adapter (not even a CPU one) is
    /// found, with the install hint for lavapipe; [`Error::Device`]
    /// when the adapter refuses to create a device.
    pub fn new() -> Result<Context> {
        Self::with_options(ContextOptions::default())
    }

    /// Like [`Context::new`], with options (e.g. NaN poisoning for tests).
    pub fn with_options(options: ContextOptions) -> Result<Context> {
        let mut options = options;
        options.check_numerics |= std::env::var("WGRAD_CHECK_NUMERICS").is_ok_and(|v| v == "1");
        match std::env::var("WGRAD_LSTM").as_deref() {
            Ok("scan") => options.lstm = LstmKernels::Scan,
            Ok("steps") => options.lstm = LstmKernels::Steps,
            _ => {}
        }
        quiet_headless_vulkan();
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pick_adapter(&instance)?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver.clone(),
        };
        // Ask for the adapter's own limits, not WebGPU's defaults, so big buffers work.
        let limits = adapter.limits();
        // Subgroup operations where offered with a fixed size (lavapipe: 8 lanes, or 16 with
        // LP_NATIVE_VECTOR_WIDTH=512).
        let subgroup = (adapter.features().contains(wgpu::Features::SUBGROUP)
            && !options.no_subgroups
            && info.subgroup_min_size == info.subgroup_max_size)
            .then_some(info.subgroup_min_size);
        let required_features = if subgroup.is_some() {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgrad"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let uncaptured: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).push(e.to_string());
        }));
        let lost: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lock(&sink) = Some(format!("{reason:?}: {message}"));
        });
        Ok(Context {
            device,
            queue,
            limits,
            summary,
            options,
            subgroup,
            pipelines: Arc::default(),
            modules: Arc::default(),
            buffers_created: Arc::default(),
            submits: Arc::default(),
            uncaptured,
            lost,
            memory: Arc::default(),
        })
    }

    /// The buffers wgrad holds on the device now and their bytes (parameters, plans,
    /// staging), to watch memory instead of guessing it.
    pub fn memory(&self) -> MemoryUse {
        MemoryUse {
            buffers: self.memory.buffers.load(Ordering::Relaxed),
            bytes: self.memory.bytes.load(Ordering::Relaxed),
        }
    }

    /// Causes a device fault, to test that wgrad reports it: returns the error a scoped
    /// fault gives, or `Ok` for faults reported later (by the next call that checks).
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Fault) -> Result<()> {
        // Mapping for reading and use as storage cannot be combined: a validation error.
        let invalid = || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("injected fault"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        match fault {
            Fault::InvalidBuffer => self.scoped("injected invalid buffer", invalid).map(drop),
            Fault::UncapturedError => {
                drop(invalid());
                Ok(())
            }
            Fault::LoseDevice => {
                self.device.destroy();
                Ok(())
            }
        }
    }

    /// Fails if the device was lost or wgpu reported an error outside any scope since the
    /// last check; `during` names the call that notices.
    pub(crate) fn check(&self, during: &str) -> Result<()> {
        if let Some(why) = lock(&self.lost).as_ref() {
            return Err(Error::Gpu(format!(
                "{during}: the device was lost ({why}); create a new Context"
            )));
        }
        let errors = std::mem::take(&mut *lock(&self.uncaptured));
        match errors.is_empty() {
            true => Ok(()),
            false => Err(Error::Gpu(format!("{during}: {}", errors.join("; ")))),
        }
    }

    /// Runs `make` inside out-of-memory and validation error scopes: an error it causes is
    /// an `Err` naming `what`, not a panic in wgpu's default handler.
    pub(crate) fn scoped<T>(&self, what: &str, make: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let invalid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = make();
        let invalid = pollster::block_on(invalid.pop());
        let oom = pollster::block_on(oom.pop());
        match oom.or(invalid) {
            None => Ok(value),
            Some(e @ wgpu::Error::OutOfMemory { .. }) => Err(Error::Gpu(format!(
                "{what}: out of device memory ({e}) on {}",
                self.summary.name
            ))),
            Some(e) => Err(Error::Gpu(format!("{what}: {e}"))),
        }
    }

    /// Which adapter this context runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// True when the adapter is a CPU implementation (lavapipe, WARP…).
    pub fn is_cpu(&self) -> bool {
        self.summary.device_type == wgpu::DeviceType::Cpu
    }

    /// The fixed subgroup size when subgroup operations are in use.
    pub fn subgroup_size(&self) -> Option<u32> {
        self.subgroup
    }

    /// How many distinct compute pipelines (kernel specialisations) this context has
    /// compiled so far.
    pub fn pipelines_compiled(&self) -> usize {
        lock(&self.pipelines).len()
    }

    /// How many GPU buffers this context has created so far.
    pub fn buffers_created(&self) -> u64 {
        self.buffers_created.load(Ordering::Relaxed)
    }

    /// How many command buffers this context has submitted so far.
    pub fn submits(&self) -> u64 {
        self.submits.load(Ordering::Relaxed)
    }

    /// The largest storage binding in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Creates a buffer after checking it against the adapter's limits.
    pub(crate) fn buffer(
        &self,
        what: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<Buffer> {
        let limit = if usage.contains(wgpu::BufferUsages::STORAGE) {
            self.max_binding_bytes()
        } else {
            self.limits.max_buffer_size
        };
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
                adapter: self.summary.name.clone(),
            });
        }
        // Rounded up to 16 bytes so that any buffer can also be read as vec4s.
        let size = bytes.max(16).div_ceil(16) * 16;
        let buffer = self.scoped(what, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size,
                usage,
                mapped_at_creation: false,
            })
        })?;
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(self.memory.track(buffer))
    }

    /// A storage buffer for `len` elements of `dtype`, usable as copy source and destination.
    pub(crate) fn storage(&self, what: &str, len: usize, dtype: DType) -> Result<Buffer> {
        let bytes = (len as u64).saturating_mul(dtype.size() as u64);
        self.storage_bytes(what, bytes)
    }

    /// A storage buffer of `bytes` bytes (copyable both ways).
    pub(crate) fn storage_bytes(&self, what: &str, bytes: u64) -> Result<Buffer> {
        self.buffer(
            what,
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// Submits one command buffer and counts it.
    pub(crate) fn submit(&self, cmd: wgpu::CommandBuffer) -> wgpu::SubmissionIndex {
        self.submits.fetch_add(1, Ordering::Relaxed);
        self.queue.submit(Some(cmd))
    }

    /// The pipeline cached under `key`, made by `compile` on first use. A compile that
    /// fails (or panics) is an error for this call only: nothing is cached and the cache
    /// stays usable.
    pub(crate) fn cached_pipeline(
        &self,
        key: String,
        compile: impl FnOnce(&wgpu::Device) -> wgpu::ComputePipeline,
    ) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = lock(&self.pipelines).get(&key) {
            return Ok(p.clone());
        }
        let what = format!("compiling kernel {key}");
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.scoped(&what, || compile(&self.device))
        }))
        .unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Error::Gpu(format!("{what}: {msg}")))
        })?;
        Ok(lock(&self.pipelines).entry(key).or_insert(made).clone())
    }

    /// Whether the pipeline under `key` is compiled already.
    pub(crate) fn has_pipeline(&self, key: &str) -> bool {
        lock(&self.pipelines).contains_key(key)
    }

    /// The shader module of the WGSL file `name`, parsed and validated once per context
    /// (every specialisation of its kernels is compiled from it).
    pub(crate) fn cached_module(
        &self,
        name: &'static str,
        make: impl FnOnce() -> wgpu::ShaderModule,
    ) -> wgpu::ShaderModule {
        if let Some(m) = lock(&self.modules).get(name) {
            return m.clone();
        }
        let made = make();
        lock(&self.modules).entry(name).or_insert(made).clone()
    }

    /// Blocks until every submitted command buffer has finished (within the readback
    /// timeout), then reports any device error since the last check.
    pub fn wait(&self) -> Result<()> {
        self.check("wait")?;
        self.poll(None, "wait")?;
        self.check("wait")
    }

    /// Waits for submission `after` (default: all) within the readback timeout.
    fn poll(&self, after: Option<wgpu::SubmissionIndex>, during: &str) -> Result<()> {
        let timeout = self.readback_timeout();
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: after,
                timeout: Some(timeout),
            })
            .map(|_| ())
            .map_err(|e| match e {
                wgpu::PollError::Timeout => Error::Gpu(format!(
                    "{during}: the device did not finish within {timeout:?} (ContextOptions::readback_timeout)"
                )),
                e => Error::Gpu(format!("{during}: {e}")),
            })
    }

    fn readback_timeout(&self) -> std::time::Duration {
        self.options.readback_timeout.unwrap_or_else(|| {
            let secs = std::env::var("WGRAD_READBACK_TIMEOUT_S")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(600);
            std::time::Duration::from_secs(secs)
        })
    }

    /// Copies `len` f32 values from byte `offset` of a buffer back to the host (blocking).
    pub(crate) fn read(&self, src: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<f32>> {
        let staging = self.buffer(
            "readback",
            (len * 4) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, offset, &staging, 0, (len * 4) as u64);
        self.submit(enc.finish());
        self.map_read(&staging, len, None)
    }

    /// Maps a MAP_READ buffer and copies out its first `len` f32 values, waiting for
    /// submission `after` (default: every submission so far).
    pub(crate) fn map_read(
        &self,
        staging: &wgpu::Buffer,
        len: usize,
        after: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<f32>> {
        let bytes = (len * 4) as u64;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.poll(after, "readback")?;
        self.check("readback")?;
        rx.recv()
            .map_err(|e| Error::Gpu(format!("readback: {e}")))?
            .map_err(|e| Error::Gpu(format!("readback: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::Gpu(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

/// On a headless Linux machine (no `XDG_RUNTIME_DIR`), Mesa's Vulkan device-selection layer
/// tries to reach a display server to rank devices and prints two `error: XDG_RUNTIME_DIR is
/// invalid` lines on every run. wgrad ranks adapters itself (`pick_adapter`), so the layer is
/// switched off there, unless the user set `NODEVICE_SELECT` already. Called before the first
/// instance is made, from the thread creating the context.
fn quiet_headless_vulkan() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if cfg!(target_os = "linux")
            && std::env::var_os("XDG_RUNTIME_DIR").is_none()
            && std::env::var_os("NODEVICE_SELECT").is_none()
        {
            std::env::set_var("NODEVICE_SELECT", "1");
        }
    });
}

/// Locks a mutex whose holder may have panicked: the data it guards (caches, error lists)
/// is valid at every step, so a poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A GPU buffer made by [`Context::buffer`], counted in [`Context::memory`] while any clone
/// of it lives; it derefs to the `wgpu::Buffer`.
#[derive(Clone, Debug)]
pub(crate) struct Buffer {
    inner: wgpu::Buffer,
    _live: Arc<Live>,
}

impl std::ops::Deref for Buffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.inner
    }
}

/// Uncounts a buffer's bytes when its last clone is dropped.
#[derive(Debug)]
struct Live {
    counter: Arc<MemoryCounter>,
    bytes: u64,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.counter.buffers.fetch_sub(1, Ordering::Relaxed);
        self.counter.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl MemoryCounter {
    /// Wraps `inner`, counting it until its last clone is dropped.
    fn track(self: &Arc<Self>, inner: wgpu::Buffer) -> Buffer {
        let bytes = inner.size();
        self.buffers.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Buffer {
            inner,
            _live: Arc::new(Live {
                counter: self.clone(),
                bytes,
            }),
        }
    }
}

/// Chooses an adapter: `WGPU_ADAPTER_NAME` if set, else the most capable device type.
fn pick_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?})", i.name, i.backend)
        })
        .collect();
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let w = wanted.to_lowercase();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&w))
            .ok_or_else(|| {
                Error::NoAdapter(format!(
                    "WGPU_ADAPTER_NAME={wanted} matches none of: [{}]",
                    names.join(", ")
                ))
            });
    }
    let rank = |t: wgpu::DeviceType| match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    // Among equal device types prefer Vulkan/Metal/DX12 over GL.
    let backend_rank = |b: wgpu::Backend| if b == wgpu::Backend::Gl { 1 } else { 0 };
    adapters
        .into_iter()
        .min_by_key(|a| {
            let i = a.get_info();
            (rank(i.device_type), backend_rank(i.backend))
        })
        .ok_or_else(|| {
            Error::NoAdapter(format!(
                "backends {backends:?} offered none; WGPU_BACKEND={}",
                std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "(unset)".into())
            ))
        })
}
