//! One compute pipeline per [`Kernel`]: its shader family and entry point, its bindings,
//! its pipeline constants, and compilation (cached by the context).

use std::borrow::Cow;

use super::contract::{Act, Epilogue};
use super::matmul_gen::{subgroup_entry, texture_entry};
use super::source::Shader;
use crate::device::Context;
use crate::graph::{AttnPart, Window};

/// How a matrix product reads its operands, beyond stored (transposed) matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Gather {
    /// Both operands are stored.
    None,
    /// B is the im2col of the images bound as B, read through the window, never stored.
    Im2col(Window),
    /// The input gradient of a stride-1 convolution: B is read like `Im2col` from the output
    /// gradients through the transposed window, and A is the filters flipped with their
    /// channel axes swapped (window.wgsl).
    Transposed(Window),
}

/// What one binding after the parameter block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// A read-only storage buffer.
    Read,
    /// A read-write storage buffer.
    Write,
    /// A uniform buffer.
    Uniform,
    /// A float texture.
    Texture,
    /// A binding number this entry point does not use.
    Unused,
}

use Binding::{Read as R, Texture as T, Uniform as U, Unused as X, Write as W};

/// A learner's update rule: an entry point of optim.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Rule {
    Sgd,
    SgdMomentum,
    Adam,
    RmsProp,
    Adagrad,
    FsAdagrad,
}

impl Rule {
    /// The entry point.
    fn entry(self) -> &'static str {
        match self {
            Rule::Sgd => "sgd",
            Rule::SgdMomentum => "sgd_momentum",
            Rule::Adam => "adam",
            Rule::RmsProp => "rmsprop",
            Rule::Adagrad => "adagrad",
            Rule::FsAdagrad => "fsadagrad",
        }
    }

    /// The learner-state arenas the rule keeps beside the parameters (0 to 2).
    pub(crate) fn states(self) -> usize {
        match self {
            Rule::Sgd => 0,
            Rule::SgdMomentum | Rule::RmsProp | Rule::Adagrad => 1,
            Rule::Adam | Rule::FsAdagrad => 2,
        }
    }
}

/// The parts of the LSTM run one step at a time (lstm_step.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum StepPart {
    /// Forwards, before the first step: the carries from h0 and c0.
    Start,
    /// Forwards, one step's cell.
    Forward,
    /// Backwards, before the first (last) step.
    BackStart,
    /// Backwards, one step's cell.
    Backward,
    /// Backwards, after the last step: the gradient reaching h0.
    BackFinish,
}

/// What a general scan's per-step kernel does (scan_step.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ScanIo {
    /// Reads each sequence's step of the iteration into a step value (zeros for a sequence
    /// whose steps are over).
    Pick,
    /// Takes a carry's next value where the sequence is at a step, and records it.
    Commit,
    /// Takes a carry's next value where the sequence is at a step.
    Hold,
    /// Records a per-step value.
    Emit,
}

/// One compute pipeline: a shader file, an entry point and its specialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Fill,
    Unary,
    Binary,
    /// Specialised for the transposes of A and B, whether each is read as vec4s, the
    /// epilogue and its activation, and how the operands are read (`gather`).
    Matmul {
        ta: bool,
        tb: bool,
        va: bool,
        vb: bool,
        epi: Epilogue,
        act: Act,
        gather: Gather,
    },
    /// Subgroup-broadcast variant for a subgroup size of `sg` (8 or 16) lanes computing
    /// blocks of `rows` rows (one of `SUBGROUP_BLOCKS`).
    MatmulSubgroup {
        ta: bool,
        tb: bool,
        vb: bool,
        sg: u8,
        rows: u8,
        epi: Epilogue,
        act: Act,
        gather: Gather,
    },
    /// The subgroup variant reading A and B from textures (`va`: a texel of A holds 4
    /// k-steps of a row, or 4 rows of a k-step when transposed; `vb` as for the others),
    /// with `c4` vec4s of columns per lane; `(sg, rows, c4)` is one of `TEXTURE_BLOCKS`.
    MatmulTexture {
        ta: bool,
        tb: bool,
        va: bool,
        vb: bool,
        sg: u8,
        rows: u8,
        c4: u8,
        epi: Epilogue,
        act: Act,
        /// `None` or `Im2col`.
        gather: Gather,
    },
    Reduce,
    /// One workgroup per output (long axes, few outputs).
    ReduceWg,
    Softmax,
    /// One workgroup per row (long rows).
    SoftmaxWg,
    CeForward,
    /// Cross-entropy and classification error of the same rows (two outputs).
    CeForwardError,
    CeBackward,
    ClassError,
    /// A learner's update of parameters side by side (optim.wgsl), reading the gradients,
    /// parameters and state from storage buffers or (`textures`, CPU adapters) from copies
    /// of them in textures.
    Update {
        rule: Rule,
        textures: bool,
    },
    Dropout,
    /// Records the node (`op` of the fill block) in the numerics buffer when a value it
    /// wrote is not finite (`ContextOptions::check_numerics`).
    FiniteCheck,
    /// Window kernels are specialised on their geometry.
    Im2Col(Window),
    /// With an activation: the result times that activation's slope at the side input.
    Col2Im(Window, Act),
    MaxPool(Window),
    AvgPool(Window),
    /// Pooling gradients, like col2im, with an activation.
    MaxPoolGrad(Window, Act),
    AvgPoolGrad(Window, Act),
    Concat,
    Slice,
    Pad,
    OneHot,
    /// Embedding rows by index, and their adjoint (sums per index, by runs of indices into
    /// copies of the table, then the copies summed).
    GatherRows,
    ScatterRows,
    ScatterRowsSum,
    /// Bias along a channel axis (`c` channels, `inner` elements after it) and an
    /// activation, specialised on all three.
    BiasAct {
        c: u32,
        inner: u32,
        act: Act,
    },
    /// Per-channel sum over the same geometry.
    ChannelSum {
        c: u32,
        inner: u32,
    },
    /// Sequence ops, specialised on their variant (sequence.wgsl).
    SeqPick {
        last: bool,
    },
    SeqPlace {
        last: bool,
    },
    SeqReduce {
        max: bool,
    },
    SeqBroadcast,
    SeqShift {
        future: bool,
    },
    SeqMask {
        begin: i32,
        end: i32,
    },
    SeqWhere {
        count: bool,
    },
    SeqGather,
    SeqScatter,
    /// A part of additive attention (attention.wgsl).
    Attention(AttnPart),
    /// An LSTM scan and its backpropagation, specialised on the direction, the forget
    /// gate's bias (as f32 bits) and the sequences each workgroup owns.
    LstmForward {
        backwards: bool,
        forget_bias: u32,
        group_seqs: u32,
    },
    LstmBackward {
        backwards: bool,
        forget_bias: u32,
        group_seqs: u32,
    },
    /// A part of the LSTM one step at a time (lstm_step.wgsl), specialised on the
    /// direction and the forget gate's bias (as f32 bits).
    LstmStep {
        part: StepPart,
        backwards: bool,
        forget_bias: u32,
    },
    /// A GRU scan and its backpropagation, specialised on the direction.
    GruForward {
        backwards: bool,
    },
    GruBackward {
        backwards: bool,
    },
    /// A plain RNN scan and its backpropagation, specialised on the direction.
    RnnForward {
        backwards: bool,
    },
    RnnBackward {
        backwards: bool,
    },
    /// A general scan's per-step read or write (scan_step.wgsl).
    ScanIo(ScanIo),
}

impl Kernel {
    /// The shader file holding this kernel.
    pub(crate) fn shader(self) -> Shader {
        match self {
            Kernel::Fill | Kernel::Dropout | Kernel::FiniteCheck => Shader::Fill,
            Kernel::Im2Col(_) | Kernel::Col2Im(..) => Shader::Conv,
            Kernel::MaxPool(_)
            | Kernel::AvgPool(_)
            | Kernel::MaxPoolGrad(..)
            | Kernel::AvgPoolGrad(..) => Shader::Pool,
            Kernel::Concat
            | Kernel::Slice
            | Kernel::Pad
            | Kernel::OneHot
            | Kernel::GatherRows
            | Kernel::ScatterRows
            | Kernel::ScatterRowsSum => Shader::Copy,
            Kernel::Unary => Shader::Unary,
            Kernel::BiasAct { .. } | Kernel::ChannelSum { .. } => Shader::Bias,
            Kernel::Binary => Shader::Binary,
            Kernel::Matmul { .. } => Shader::Matmul,
            Kernel::MatmulSubgroup { .. } => Shader::MatmulSubgroup,
            Kernel::MatmulTexture { .. } => Shader::MatmulTexture,
            Kernel::Reduce | Kernel::ReduceWg => Shader::Reduce,
            Kernel::Softmax | Kernel::SoftmaxWg => Shader::Softmax,
            Kernel::CeForward
            | Kernel::CeBackward
            | Kernel::ClassError
            | Kernel::CeForwardError => Shader::Loss,
            Kernel::Update { textures, .. } => match textures {
                false => Shader::Optim,
                true => Shader::OptimTexture,
            },
            Kernel::SeqPick { .. }
            | Kernel::SeqPlace { .. }
            | Kernel::SeqReduce { .. }
            | Kernel::SeqBroadcast
            | Kernel::SeqShift { .. }
            | Kernel::SeqMask { .. }
            | Kernel::SeqWhere { .. }
            | Kernel::SeqGather
            | Kernel::SeqScatter => Shader::Sequence,
            Kernel::Attention(_) => Shader::Attention,
            Kernel::LstmForward { .. } | Kernel::LstmBackward { .. } => Shader::Recurrence,
            Kernel::LstmStep { .. } => Shader::LstmStep,
            Kernel::GruForward { .. } | Kernel::GruBackward { .. } => Shader::Gru,
            Kernel::RnnForward { .. } | Kernel::RnnBackward { .. } => Shader::Rnn,
            Kernel::ScanIo(_) => Shader::ScanStep,
        }
    }

    /// The entry point's name.
    pub(crate) fn entry(self) -> &'static str {
        match self {
            Kernel::CeForward => "ce_forward",
            Kernel::CeForwardError => "ce_forward_error",
            Kernel::CeBackward => "ce_backward",
            Kernel::ClassError => "class_error",
            Kernel::Update { rule, .. } => rule.entry(),
            Kernel::Dropout => "dropout",
            Kernel::FiniteCheck => "finite_check",
            Kernel::MatmulSubgroup { sg, rows, .. } => subgroup_entry(sg as u32, rows as u32),
            Kernel::MatmulTexture { sg, rows, c4, .. } => {
                texture_entry(sg as u32, rows as u32, c4 as u32)
            }
            Kernel::Im2Col(_) => "im2col",
            Kernel::Col2Im(..) => "col2im",
            Kernel::MaxPool(_) => "max_forward",
            Kernel::AvgPool(_) => "avg_forward",
            Kernel::MaxPoolGrad(w, _) if w.tiles() => "max_backward_tiles",
            Kernel::AvgPoolGrad(w, _) if w.tiles() => "avg_backward_tiles",
            Kernel::MaxPoolGrad(..) => "max_backward",
            Kernel::AvgPoolGrad(..) => "avg_backward",
            Kernel::Concat => "concat",
            Kernel::Slice => "slice",
            Kernel::Pad => "pad",
            Kernel::OneHot => "one_hot",
            Kernel::GatherRows => "gather_rows",
            Kernel::ScatterRows => "scatter_rows",
            Kernel::ScatterRowsSum => "scatter_rows_sum",
            Kernel::ReduceWg | Kernel::SoftmaxWg => "main_wg",
            Kernel::BiasAct { .. } => "bias_act",
            Kernel::ChannelSum { inner: 1, .. } => "channel_sum_columns",
            Kernel::ChannelSum { .. } => "channel_sum",
            Kernel::SeqPick { .. } => "seq_pick",
            Kernel::SeqPlace { .. } => "seq_place",
            Kernel::SeqReduce { .. } => "seq_reduce",
            Kernel::SeqBroadcast => "seq_broadcast",
            Kernel::SeqShift { .. } => "seq_shift",
            Kernel::SeqMask { .. } => "seq_mask",
            Kernel::SeqWhere { .. } => "seq_where",
            Kernel::SeqGather => "seq_gather",
            Kernel::SeqScatter => "seq_scatter",
            Kernel::Attention(part) => match part {
                AttnPart::Weights => "attn_weights",
                AttnPart::Apply => "attn_apply",
                AttnPart::ApplyGradAlpha => "attn_apply_grad_alpha",
                AttnPart::ApplyGradValues => "attn_apply_grad_values",
                AttnPart::ScoreGrad => "attn_score_grad",
                AttnPart::GradQ => "attn_grad_q",
                AttnPart::GradK => "attn_grad_k",
                AttnPart::GradV => "attn_grad_v",
            },
            Kernel::LstmForward { .. } => "lstm_forward",
            Kernel::LstmBackward { .. } => "lstm_backward",
            Kernel::LstmStep { part, .. } => match part {
                StepPart::Start => "lstm_step_start",
                StepPart::Forward => "lstm_step_forward",
                StepPart::BackStart => "lstm_step_back_start",
                StepPart::Backward => "lstm_step_backward",
                StepPart::BackFinish => "lstm_step_back_finish",
            },
            Kernel::GruForward { .. } => "gru_forward",
            Kernel::GruBackward { .. } => "gru_backward",
            Kernel::RnnForward { .. } => "rnn_forward",
            Kernel::RnnBackward { .. } => "rnn_backward",
            Kernel::ScanIo(io) => match io {
                ScanIo::Pick => "scan_pick",
                ScanIo::Commit => "scan_commit",
                ScanIo::Hold => "scan_hold",
                ScanIo::Emit => "scan_emit",
            },
            _ => "main",
        }
    }

    /// The bindings after the parameter block, from binding 1 on.
    pub(crate) fn bindings(self) -> &'static [Binding] {
        match self {
            Kernel::Fill => &[X, W],
            Kernel::Dropout => &[R, W, U],
            // The value, then the numerics buffer (binding 4).
            Kernel::FiniteCheck => &[R, X, X, W],
            Kernel::Unary
            | Kernel::Reduce
            | Kernel::ReduceWg
            | Kernel::Softmax
            | Kernel::SoftmaxWg
            | Kernel::Im2Col(_) => &[R, W],
            // The gradient, the image, then the activation's output (the gradient again
            // when there is none).
            Kernel::Col2Im(..) => &[R, W, R],
            Kernel::MaxPool(_)
            | Kernel::AvgPool(_)
            | Kernel::Slice
            | Kernel::Pad
            | Kernel::OneHot
            | Kernel::ScatterRowsSum
            | Kernel::ChannelSum { .. } => &[R, X, W],
            // The table (or the indices), the indices (or the gradient rows), the result.
            Kernel::Concat
            | Kernel::Binary
            | Kernel::BiasAct { .. }
            | Kernel::GatherRows
            | Kernel::ScatterRows => &[R, R, W],
            // The image, the output gradient, the result, then the activation's output (the
            // image again when there is none).
            Kernel::MaxPoolGrad(..) | Kernel::AvgPoolGrad(..) => &[R, R, W, R],
            // A, B, C, then the epilogue's side input (A again when there is none).
            Kernel::Matmul { .. } | Kernel::MatmulSubgroup { .. } => &[R, R, W, R],
            // The same from textures.
            Kernel::MatmulTexture { .. } => &[T, T, W, R],
            Kernel::CeForward | Kernel::ClassError => &[R, R, X, W],
            Kernel::CeForwardError => &[R, R, X, W, W],
            Kernel::CeBackward => &[R, R, R, W],
            // Gradients, hyper-parameters (with the clipping factor), parameters, state,
            // binding 6 unused, the per-sample losses and the numerics guard.
            // From textures: the gradients' texture first, and after the guard those of the
            // parameters and the state.
            Kernel::Update { rule, textures } => match (rule.states(), textures) {
                (0, false) => &[R, U, W, X, X, X, R, W],
                (1, false) => &[R, U, W, W, X, X, R, W],
                (_, false) => &[R, U, W, W, W, X, R, W],
                (0, true) => &[T, U, W, X, X, X, R, W, T],
                (1, true) => &[T, U, W, W, X, X, R, W, T, T],
                (_, true) => &[T, U, W, W, W, X, R, W, T, T, T],
            },
            // The sequence tensor (or per-sequence values), the lengths, then the result.
            Kernel::SeqPick { .. }
            | Kernel::SeqPlace { .. }
            | Kernel::SeqReduce { .. }
            | Kernel::SeqBroadcast => &[R, R, X, W],
            // The sequence, the lengths, the initial state, the result.
            Kernel::SeqShift { .. } => &[R, R, R, W],
            Kernel::SeqMask { .. } => &[X, R, X, W],
            // The condition, the lengths, the result.
            Kernel::SeqWhere { .. } => &[R, R, X, W],
            // The sequence (or the gathered gradients), the lengths, the indices, the result.
            Kernel::SeqGather | Kernel::SeqScatter => &[R, R, R, W],
            // Up to four operands, the queries' and the keys' lengths, the result.
            Kernel::Attention(AttnPart::Weights) => &[R, R, R, X, R, R, W],
            Kernel::Attention(AttnPart::GradQ | AttnPart::GradK | AttnPart::GradV) => {
                &[R, R, R, R, R, R, W]
            }
            Kernel::Attention(_) => &[R, R, X, X, R, R, W],
            // Projections, U, h0, c0, lengths; the states and their gradient (backward only);
            // the result.
            Kernel::LstmForward { .. } => &[R, R, R, R, R, X, X, W],
            Kernel::LstmBackward { .. } => &[R, R, R, R, R, R, R, W],
            // Projections, lengths, the states, their gradient, h0, c0; then the products'
            // outputs, their operands, the cell's own scratch, the result and the forward
            // iterations' gates.
            Kernel::LstmStep { part, .. } => match part {
                StepPart::Start => &[X, X, X, X, R, R, X, W, W, X, X],
                StepPart::Forward => &[R, R, X, X, X, X, W, W, W, W, W],
                StepPart::BackStart => &[X, X, X, X, R, R, W, X, W, X, X],
                StepPart::Backward => &[X, R, R, R, X, X, W, W, W, W, W],
                StepPart::BackFinish => &[X, R, X, X, X, X, W, X, X, W, X],
            },
            // Projections, U, h0, lengths; the states and their gradient (backward only); the
            // result.
            Kernel::GruForward { .. } | Kernel::RnnForward { .. } => &[R, R, R, R, X, X, W],
            Kernel::GruBackward { .. } | Kernel::RnnBackward { .. } => &[R, R, R, R, R, R, W],
            // The lengths, the value read, the step value or carry written, the sequence
            // written.
            Kernel::ScanIo(io) => match io {
                ScanIo::Pick | ScanIo::Hold => &[R, R, W, X],
                ScanIo::Commit => &[R, R, W, W],
                ScanIo::Emit => &[R, R, X, W],
            },
        }
    }

    fn layout(self, device: &wgpu::Device) -> wgpu::BindGroupLayout {
        let uniform = wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        };
        let storage = |read_only| wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        };
        let texture = wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        };
        let mut entries = vec![(0, uniform)];
        for (i, b) in self.bindings().iter().enumerate() {
            let ty = match b {
                Binding::Read => storage(true),
                Binding::Write => storage(false),
                Binding::Uniform => uniform,
                Binding::Texture => texture,
                Binding::Unused => continue,
            };
            entries.push((i as u32 + 1, ty));
        }
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(binding, ty)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty,
                count: None,
            })
            .collect();
        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(self.entry()),
            entries: &entries,
        })
    }

    /// Values of the shader's `override` constants.
    fn constants(self) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| b as u8 as f64;
        match self {
            Kernel::Matmul {
                ta,
                tb,
                va,
                vb,
                epi,
                act,
                gather,
            } => {
                let mut v = matmul_constants(ta, tb, vb, epi, act, gather);
                v.push(("VA", flag(va)));
                v
            }
            Kernel::Im2Col(w) | Kernel::MaxPool(w) | Kernel::AvgPool(w) => window_constants(w),
            Kernel::Col2Im(w, act) | Kernel::MaxPoolGrad(w, act) | Kernel::AvgPoolGrad(w, act) => {
                let mut v = window_constants(w);
                v.push(("ACT", act as u32 as f64));
                v
            }
            Kernel::MatmulSubgroup {
                ta,
                tb,
                vb,
                epi,
                act,
                gather,
                ..
            } => matmul_constants(ta, tb, vb, epi, act, gather),
            Kernel::MatmulTexture {
                ta,
                tb,
                va,
                vb,
                epi,
                act,
                gather,
                ..
            } => {
                // No flipped filters here (no FLIP_A).
                let mut v = matmul_constants(ta, tb, vb, epi, act, gather);
                v.retain(|c| c.0 != "FLIP_A");
                v.push(("VA", flag(va)));
                v
            }
            Kernel::BiasAct { c, inner, act } => vec![
                ("C", c as f64),
                ("INNER", inner as f64),
                ("ACT", act as u32 as f64),
            ],
            Kernel::SeqPick { last } | Kernel::SeqPlace { last } => vec![("LAST", flag(last))],
            Kernel::SeqReduce { max } => vec![("MAX", flag(max))],
            Kernel::SeqShift { future } => vec![("FUTURE", flag(future))],
            Kernel::SeqMask { begin, end } => {
                vec![("BEGIN", begin as f64), ("END", end as f64)]
            }
            Kernel::SeqWhere { count } => vec![("COUNT", flag(count))],
            Kernel::GruForward { backwards }
            | Kernel::GruBackward { backwards }
            | Kernel::RnnForward { backwards }
            | Kernel::RnnBackward { backwards } => {
                vec![("BACKWARDS", flag(backwards))]
            }
            Kernel::LstmForward {
                backwards,
                forget_bias,
                group_seqs,
            } => vec![
                ("BACKWARDS", flag(backwards)),
                ("FORGET_BIAS", f32::from_bits(forget_bias) as f64),
                ("GROUP_SEQS", group_seqs as f64),
                ("STATE_QUADS", 512.0),
            ],
            Kernel::LstmBackward {
                backwards,
                forget_bias,
                group_seqs,
            } => vec![
                ("BACKWARDS", flag(backwards)),
                ("FORGET_BIAS", f32::from_bits(forget_bias) as f64),
                ("GROUP_SEQS", group_seqs as f64),
                ("STATE_QUADS", 256.0),
            ],
            Kernel::LstmStep {
                backwards,
                forget_bias,
                ..
            } => vec![
                ("BACKWARDS", flag(backwards)),
                ("FORGET_BIAS", f32::from_bits(forget_bias) as f64),
            ],
            Kernel::ChannelSum { c, inner } => vec![("C", c as f64), ("INNER", inner as f64)],
            _ => Vec::new(),
        }
    }

    /// Compiles the pipeline from its shader's `module` (the context caches the result, see
    /// [`pipeline`]).
    fn compile(self, device: &wgpu::Device, module: &wgpu::ShaderModule) -> wgpu::ComputePipeline {
        let bgl = self.layout(device);
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(self.entry()),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(self.entry()),
            layout: Some(&layout),
            module,
            entry_point: Some(self.entry()),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &self.constants(),
                ..Default::default()
            },
            cache: None,
        })
    }
}

/// The compiled pipeline of `kernel` on `ctx`, compiled on first use and cached there (by
/// the kernel's full specialisation).
pub(crate) fn pipeline(ctx: &Context, kernel: Kernel) -> crate::Result<wgpu::ComputePipeline> {
    ctx.cached_pipeline(format!("{kernel:?}"), |device| {
        let shader = kernel.shader();
        let module = ctx.cached_module(shader.module_name(), || {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.module_name()),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(shader.source())),
            })
        });
        kernel.compile(device, &module)
    })
}

/// Compiles the pipelines of `kernels` that `ctx` has not compiled yet, on as many threads
/// as the machine has cores (one by one, a plan's first run waits for each in turn: on
/// lavapipe the large product kernels take about a second each, even with Mesa's shader
/// cache warm). `WGRAD_COMPILE_THREADS=N` sets the number of threads (1: one by one). The
/// first error is returned; every pipeline that compiled stays cached.
pub(crate) fn precompile(ctx: &Context, kernels: &[Kernel]) -> crate::Result<()> {
    let mut todo: Vec<Kernel> = Vec::new();
    for &k in kernels {
        if !todo.contains(&k) && !ctx.has_pipeline(&format!("{k:?}")) {
            todo.push(k);
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("WGRAD_COMPILE_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(cores)
        .min(todo.len());
    // GL compiles under one context lock: one by one there.
    if threads < 2 || ctx.adapter().backend == wgpu::Backend::Gl {
        return todo.iter().try_for_each(|&k| pipeline(ctx, k).map(|_| ()));
    }
    compile_on_threads(ctx, &todo, threads)
}

/// Compiles `todo` on `threads` threads; the first error is returned.
#[cfg(not(target_arch = "wasm32"))]
fn compile_on_threads(ctx: &Context, todo: &[Kernel], threads: usize) -> crate::Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> crate::Result<()> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match todo.get(i) {
                Some(&k) => pipeline(ctx, k).map(|_| ())?,
                None => return Ok(()),
            }
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
        let results: Vec<crate::Result<()>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::Error::Gpu(
                        "a pipeline compile thread panicked".into(),
                    ))
                })
            })
            .collect();
        results.into_iter().collect()
    })
}

/// wasm32 has no threads (and WebGPU's device is not `Sync`): one by one.
#[cfg(target_arch = "wasm32")]
fn compile_on_threads(ctx: &Context, todo: &[Kernel], _threads: usize) -> crate::Result<()> {
    todo.iter().try_for_each(|&k| pipeline(ctx, k).map(|_| ()))
}

/// The override constants of window.wgsl for `w`.
fn window_constants(w: Window) -> Vec<(&'static str, f64)> {
    [
        ("WC", w.c),
        ("WH", w.h),
        ("WW", w.w),
        ("KH", w.kh),
        ("KW", w.kw),
        ("SH", w.sh),
        ("SW", w.sw),
        ("PH", w.ph),
        ("PW", w.pw),
        ("DH", w.dh),
        ("DW", w.dw),
        ("OH", w.oh),
        ("OW", w.ow),
    ]
    .into_iter()
    .map(|(k, v)| (k, v as f64))
    .collect()
}

/// The override constants the matmul kernels share.
fn matmul_constants(
    ta: bool,
    tb: bool,
    vb: bool,
    epi: Epilogue,
    act: Act,
    gather: Gather,
) -> Vec<(&'static str, f64)> {
    let mut v = vec![
        ("TA", ta as u8 as f64),
        ("TB", tb as u8 as f64),
        ("VB", vb as u8 as f64),
        ("EPI", epi as u32 as f64),
        ("ACT", act as u32 as f64),
    ];
    v.extend(gather_constants(gather));
    v
}

/// The constants that make a matrix product read B through a window (none without one).
fn gather_constants(gather: Gather) -> Vec<(&'static str, f64)> {
    let (w, flip) = match gather {
        Gather::None => return Vec::new(),
        Gather::Im2col(w) => (w, false),
        Gather::Transposed(w) => (w, true),
    };
    let mut v = window_constants(w);
    v.push(("GATHER", 1.0));
    v.push(("FLIP_A", flip as u8 as f64));
    v
}
