//! The registry of WGSL kernels: one `.wgsl` file per family, one entry per pipeline.
//!
//! Every pipeline has an explicit bind-group layout: binding 0 is the kernel's parameter
//! block (a uniform), and the following bindings are described by [`Kernel::signature`].

use std::borrow::Cow;

use crate::device::{Context, PARAMS_SIZE};
use crate::graph::Window;
use crate::Result;

/// A WGSL source file in `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// Constants, NaN poison and seeded random numbers.
    Fill,
    /// Elementwise unary functions.
    Unary,
    /// Elementwise binary functions with broadcasting.
    Binary,
    /// Batched matrix product with transposes.
    Matmul,
    /// Batched matrix product sharing A through subgroup broadcasts (CPU adapters).
    MatmulSubgroup,
    /// The same design reading both operands from textures (CPU adapters).
    MatmulTexture,
    /// Reductions over one axis.
    Reduce,
    /// Softmax and log-softmax.
    Softmax,
    /// Cross-entropy with softmax and classification error.
    Loss,
    /// Optimizer updates.
    Optim,
    /// im2col and col2im.
    Conv,
    /// Max and average pooling.
    Pool,
    /// Concat, slice, pad, one-hot.
    Copy,
    /// Per-channel bias with a fused activation, and per-channel sums.
    Bias,
}

impl Shader {
    /// Every shader file.
    pub const ALL: [Shader; 14] = [
        Shader::Fill,
        Shader::Unary,
        Shader::Binary,
        Shader::Matmul,
        Shader::MatmulSubgroup,
        Shader::MatmulTexture,
        Shader::Reduce,
        Shader::Softmax,
        Shader::Loss,
        Shader::Optim,
        Shader::Conv,
        Shader::Pool,
        Shader::Copy,
        Shader::Bias,
    ];

    /// The file name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Fill => "fill.wgsl",
            Shader::Unary => "unary.wgsl",
            Shader::Binary => "binary.wgsl",
            Shader::Matmul => "matmul.wgsl",
            Shader::MatmulSubgroup => "matmul_subgroup.wgsl",
            Shader::MatmulTexture => "matmul_texture.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Softmax => "softmax.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::Conv => "conv.wgsl",
            Shader::Pool => "pool.wgsl",
            Shader::Copy => "copy.wgsl",
            Shader::Bias => "bias.wgsl",
        }
    }

    /// The WGSL source, compiled into the crate, with the preludes it uses prepended
    /// (`window`, `grid`, `activation`, `epilogue`, `lanes`; for the subgroup matmul, its
    /// generated entry points).
    pub fn source(self) -> &'static str {
        match self {
            Shader::Fill => include_str!("../shaders/fill.wgsl"),
            Shader::Unary => include_str!("../shaders/unary.wgsl"),
            Shader::Binary => include_str!("../shaders/binary.wgsl"),
            Shader::Matmul => concat!(
                include_str!("../shaders/activation.wgsl"),
                include_str!("../shaders/product.wgsl"),
                include_str!("../shaders/window.wgsl"),
                include_str!("../shaders/matmul.wgsl")
            ),
            Shader::MatmulSubgroup => {
                static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                SOURCE.get_or_init(|| {
                    let mut s = String::new();
                    s.push_str(include_str!("../shaders/activation.wgsl"));
                    s.push_str(include_str!("../shaders/product.wgsl"));
                    s.push_str(include_str!("../shaders/window.wgsl"));
                    for &(lanes, rows) in SUBGROUP_BLOCKS {
                        s.push_str(&subgroup_entry_point(lanes, rows));
                    }
                    s.push_str(include_str!("../shaders/matmul_subgroup.wgsl"));
                    s
                })
            }
            Shader::MatmulTexture => {
                static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                SOURCE.get_or_init(|| {
                    let mut s = String::new();
                    s.push_str(include_str!("../shaders/activation.wgsl"));
                    s.push_str(include_str!("../shaders/product.wgsl"));
                    s.push_str(include_str!("../shaders/window.wgsl"));
                    for &(lanes, rows, c4) in TEXTURE_BLOCKS {
                        s.push_str(&texture_entry_point(lanes, rows, c4));
                    }
                    s.push_str(include_str!("../shaders/matmul_texture.wgsl"));
                    s
                })
            }
            Shader::Reduce => concat!(
                include_str!("../shaders/lanes.wgsl"),
                include_str!("../shaders/reduce.wgsl")
            ),
            Shader::Softmax => concat!(
                include_str!("../shaders/lanes.wgsl"),
                include_str!("../shaders/softmax.wgsl")
            ),
            Shader::Loss => include_str!("../shaders/loss.wgsl"),
            Shader::Optim => include_str!("../shaders/optim.wgsl"),
            Shader::Conv => concat!(
                include_str!("../shaders/activation.wgsl"),
                include_str!("../shaders/window.wgsl"),
                include_str!("../shaders/grid.wgsl"),
                include_str!("../shaders/conv.wgsl")
            ),
            Shader::Pool => concat!(
                include_str!("../shaders/activation.wgsl"),
                include_str!("../shaders/window.wgsl"),
                include_str!("../shaders/grid.wgsl"),
                include_str!("../shaders/pool.wgsl")
            ),
            Shader::Copy => include_str!("../shaders/copy.wgsl"),
            Shader::Bias => concat!(
                include_str!("../shaders/activation.wgsl"),
                include_str!("../shaders/lanes.wgsl"),
                include_str!("../shaders/bias.wgsl")
            ),
        }
    }
}

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

/// One compute pipeline: a shader file and an entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Fill,
    Unary,
    Binary,
    /// Specialised for the transposes of A and B, whether each is read as vec4s, the
    /// epilogue (`epi`: 0 none, 1 bias per column, 2 bias per row, 3 activation slope;
    /// `act` as in BiasAct), and how the operands are read (`gather`).
    Matmul {
        ta: bool,
        tb: bool,
        va: bool,
        vb: bool,
        epi: u8,
        act: u8,
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
        epi: u8,
        act: u8,
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
        epi: u8,
        act: u8,
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
    Sgd,
    SgdMomentum,
    Adam,
    RmsProp,
    Adagrad,
    Dropout,
    /// Window kernels are specialised on their geometry.
    Im2Col(Window),
    /// With an activation code: the result times that activation's slope at the side input.
    Col2Im(Window, u8),
    MaxPool(Window),
    AvgPool(Window),
    /// Pooling gradients, like col2im, with an activation code.
    MaxPoolGrad(Window, u8),
    AvgPoolGrad(Window, u8),
    Concat,
    Slice,
    Pad,
    OneHot,
    /// Bias along a channel axis (`c` channels, `inner` elements after it) and an
    /// activation code (0 none, 1 relu, 2 sigmoid, 3 tanh), specialised on all three.
    BiasAct {
        c: u32,
        inner: u32,
        act: u8,
    },
    /// Per-channel sum over the same geometry.
    ChannelSum {
        c: u32,
        inner: u32,
    },
}

impl Kernel {
    /// The shader file holding this kernel.
    pub(crate) fn shader(self) -> Shader {
        match self {
            Kernel::Fill | Kernel::Dropout => Shader::Fill,
            Kernel::Im2Col(_) | Kernel::Col2Im(..) => Shader::Conv,
            Kernel::MaxPool(_)
            | Kernel::AvgPool(_)
            | Kernel::MaxPoolGrad(..)
            | Kernel::AvgPoolGrad(..) => Shader::Pool,
            Kernel::Concat | Kernel::Slice | Kernel::Pad | Kernel::OneHot => Shader::Copy,
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
            Kernel::Sgd
            | Kernel::SgdMomentum
            | Kernel::Adam
            | Kernel::RmsProp
            | Kernel::Adagrad => Shader::Optim,
        }
    }

    /// The entry point's name.
    pub(crate) fn entry(self) -> &'static str {
        match self {
            Kernel::CeForward => "ce_forward",
            Kernel::CeForwardError => "ce_forward_error",
            Kernel::CeBackward => "ce_backward",
            Kernel::ClassError => "class_error",
            Kernel::Sgd => "sgd",
            Kernel::SgdMomentum => "sgd_momentum",
            Kernel::Adam => "adam",
            Kernel::RmsProp => "rmsprop",
            Kernel::Adagrad => "adagrad",
            Kernel::Dropout => "dropout",
            Kernel::MatmulSubgroup { sg, rows, .. } => match (sg, rows) {
                (8, 8) => "main8_r8",
                (8, 16) => "main8_r16",
                (8, 32) => "main8_r32",
                (8, _) => "main8_r64",
                (_, 16) => "main16_r16",
                (_, 32) => "main16_r32",
                _ => "main16_r64",
            },
            Kernel::MatmulTexture { sg, rows, c4, .. } => match (sg, rows, c4) {
                (8, 8, _) => "tex8_r8_c1",
                (8, 16, _) => "tex8_r16_c1",
                (8, 32, _) => "tex8_r32_c1",
                (8, _, 1) => "tex8_r64_c1",
                (8, _, _) => "tex8_r64_c2",
                (_, 16, _) => "tex16_r16_c1",
                (_, 32, _) => "tex16_r32_c1",
                (_, _, 1) => "tex16_r64_c1",
                _ => "tex16_r64_c2",
            },
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
            Kernel::ReduceWg | Kernel::SoftmaxWg => "main_wg",
            Kernel::BiasAct { .. } => "bias_act",
            Kernel::ChannelSum { inner: 1, .. } => "channel_sum_columns",
            Kernel::ChannelSum { .. } => "channel_sum",
            _ => "main",
        }
    }

    /// Bindings after the parameter block, in order from binding 1: `r` read-only storage,
    /// `w` read-write storage, `u` uniform, `t` float texture, `-` unused by this entry
    /// point.
    pub(crate) fn signature(self) -> &'static str {
        match self {
            Kernel::Fill => "-w",
            Kernel::Dropout => "rwu",
            Kernel::Unary
            | Kernel::Reduce
            | Kernel::ReduceWg
            | Kernel::Softmax
            | Kernel::SoftmaxWg
            | Kernel::Im2Col(_) => "rw",
            // The gradient, the image, then the activation's output (the gradient again
            // when there is none).
            Kernel::Col2Im(..) => "rwr",
            Kernel::MaxPool(_)
            | Kernel::AvgPool(_)
            | Kernel::Slice
            | Kernel::Pad
            | Kernel::OneHot
            | Kernel::ChannelSum { .. } => "r-w",
            Kernel::Concat => "rrw",
            // The image, the output gradient, the result, then the activation's output (the
            // image again when there is none).
            Kernel::MaxPoolGrad(..) | Kernel::AvgPoolGrad(..) => "rrwr",
            Kernel::Binary | Kernel::BiasAct { .. } => "rrw",
            // A, B, C, then the epilogue's bias (A again when there is none).
            Kernel::Matmul { .. } | Kernel::MatmulSubgroup { .. } => "rrwr",
            // The same from textures.
            Kernel::MatmulTexture { .. } => "ttwr",
            Kernel::CeForward | Kernel::ClassError => "rr-w",
            Kernel::CeForwardError => "rr-ww",
            Kernel::CeBackward => "rrrw",
            Kernel::Sgd => "ruw--r",
            Kernel::SgdMomentum | Kernel::RmsProp | Kernel::Adagrad => "ruww-r",
            Kernel::Adam => "ruwwwr",
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
        for (i, c) in self.signature().chars().enumerate() {
            let ty = match c {
                'r' => storage(true),
                'w' => storage(false),
                'u' => uniform,
                't' => texture,
                _ => continue,
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
                v.push(("VA", va as u8 as f64));
                v
            }
            Kernel::Im2Col(w) | Kernel::MaxPool(w) | Kernel::AvgPool(w) => window_constants(w),
            Kernel::Col2Im(w, act) | Kernel::MaxPoolGrad(w, act) | Kernel::AvgPoolGrad(w, act) => {
                let mut v = window_constants(w);
                v.push(("ACT", act as f64));
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
                v.push(("VA", va as u8 as f64));
                v
            }
            Kernel::BiasAct { c, inner, act } => vec![
                ("C", c as f64),
                ("INNER", inner as f64),
                ("ACT", act as f64),
            ],
            Kernel::ChannelSum { c, inner } => vec![("C", c as f64), ("INNER", inner as f64)],
            _ => Vec::new(),
        }
    }

    /// Compiles the pipeline (the context caches the result).
    pub(crate) fn compile(self, device: &wgpu::Device) -> wgpu::ComputePipeline {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(self.shader().file_name()),
            source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(self.shader().source())),
        });
        let bgl = self.layout(device);
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(self.entry()),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(self.entry()),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(self.entry()),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &self.constants(),
                ..Default::default()
            },
            cache: None,
        })
    }
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

/// The override constants both matmul kernels share.
fn matmul_constants(
    ta: bool,
    tb: bool,
    vb: bool,
    epi: u8,
    act: u8,
    gather: Gather,
) -> Vec<(&'static str, f64)> {
    let mut v = vec![
        ("TA", ta as u8 as f64),
        ("TB", tb as u8 as f64),
        ("VB", vb as u8 as f64),
        ("EPI", epi as f64),
        ("ACT", act as f64),
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

/// The (subgroup size, rows per block) pairs of the subgroup matmul's entry points.
pub(crate) const SUBGROUP_BLOCKS: &[(u32, u32)] = &[
    (8, 8),
    (8, 16),
    (8, 32),
    (8, 64),
    (16, 16),
    (16, 32),
    (16, 64),
];

/// Opens a generated matmul entry point `name`: one subgroup of `lanes` lanes per workgroup,
/// block rows from `i0`, and the lane's first column `j` (`cols` columns per lane).
fn open_entry_point(w: &mut String, name: &str, lanes: u32, rows: u32, cols: u32) {
    use std::fmt::Write;
    let _ = writeln!(w, "@compute @workgroup_size({lanes}, 1, 1)");
    let _ = writeln!(
        w,
        "fn {name}(@builtin(workgroup_id) wid: vec3<u32>, \
         @builtin(subgroup_invocation_id) lane: u32) {{"
    );
    let _ = writeln!(w, "    let i0 = wid.y * {rows}u;");
    let _ = writeln!(w, "    let j = wid.x * {}u + lane * {cols}u;", cols * lanes);
}

/// Opens the loops over the batch items summed into this output (with their operands' bases
/// `abase`, `bbase`) and over k, `k_step` at a time.
fn open_loops(w: &mut String, k_step: u32) {
    use std::fmt::Write;
    let _ = writeln!(
        w,
        "    for (var z = wid.z; z < wid.z + max(p.zsum, 1u); z++) {{\n        \
         let abase = z * p.a_batch;\n        let bbase = z * p.b_batch;\n        \
         for (var k = 0u; k < p.k; k += {k_step}u) {{"
    );
}

/// Closes the loops `open_loops` opened and sets `cbase`, where this output starts in C.
fn close_loops(w: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(w, "        }}\n    }}\n    let cbase = wid.z * p.m * p.n;");
}

/// WGSL of the subgroup matmul's entry point `main{lanes}_r{rows}` (see
/// matmul_subgroup.wgsl): lane `l` accumulates rows `i0 + r` of its 4 columns in `c{r}`,
/// loading rows `i0 + q·lanes + l` of A and sharing them with subgroupBroadcast.
fn subgroup_entry_point(lanes: u32, rows: u32) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = &mut s;
    open_entry_point(w, &format!("main{lanes}_r{rows}"), lanes, rows, 4);
    for r in 0..rows {
        let _ = writeln!(w, "    var c{r} = vec4<f32>(0.0);");
    }
    let _ = writeln!(w, "    let bq = b_prepare(j);");
    open_loops(w, 1);
    let _ = writeln!(w, "            let bv = b_row4(bbase, k, j, bq);");
    for q in 0..rows / lanes {
        let _ = writeln!(
            w,
            "            let a{q} = a_elem(abase, i0 + {}u + lane, k);",
            q * lanes
        );
        for l in 0..lanes {
            let _ = writeln!(
                w,
                "            c{} += subgroupBroadcast(a{q}, {l}u) * bv;",
                q * lanes + l
            );
        }
    }
    close_loops(w);
    let _ = writeln!(w, "    if (j < p.n) {{");
    for r in 0..rows {
        let _ = writeln!(w, "        store4(cbase, i0 + {r}u, j, c{r});");
    }
    let _ = writeln!(w, "    }}\n}}\n");
    s
}

/// Texels per row of the textures the texture matmul reads (`TEXTURE_WIDTH` in
/// matmul_texture.wgsl): 16 KiB, a multiple of the 256-byte row alignment of copies.
pub(crate) const TEXTURE_WIDTH: usize = 1024;

/// The (subgroup size, rows per block, vec4 columns per lane) triples of the texture
/// matmul's entry points: the subgroup blocks with 4 columns per lane, and 8 columns for the
/// 64-row blocks of wide products.
pub(crate) const TEXTURE_BLOCKS: &[(u32, u32, u32)] = &[
    (8, 8, 1),
    (8, 16, 1),
    (8, 32, 1),
    (8, 64, 1),
    (8, 64, 2),
    (16, 16, 1),
    (16, 32, 1),
    (16, 64, 1),
    (16, 64, 2),
];

/// WGSL of the texture matmul's entry point `tex{lanes}_r{rows}_c{c4}` (see
/// matmul_texture.wgsl): lane `l` accumulates rows `i0 + r` of its columns `j + 4q ..` in
/// `c{r}_{q}`, 4 k-steps at a time, sharing rows `i0 + g·lanes + l` of A (or, transposed,
/// rows `i0 + h·4·lanes + 4l ..`) through subgroupBroadcast. The k-steps are added in order,
/// as in the subgroup kernel.
fn texture_entry_point(lanes: u32, rows: u32, c4: u32) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = &mut s;
    open_entry_point(w, &format!("tex{lanes}_r{rows}_c{c4}"), lanes, rows, 4 * c4);
    for r in 0..rows {
        for q in 0..c4 {
            let _ = writeln!(w, "    var c{r}_{q} = vec4<f32>(0.0);");
        }
    }
    for q in 0..c4 {
        let _ = writeln!(w, "    let bq{q} = b_prepare(j + {}u);", 4 * q);
    }
    open_loops(w, 4);
    for q in 0..c4 {
        let _ = writeln!(
            w,
            "            let b{q} = b_block(bbase, k, j + {}u, bq{q});",
            4 * q
        );
    }
    // s{r}: op(A)[i0 + r, k .. k + 4], shared from the lane that loaded it.
    for r in 0..rows {
        let _ = writeln!(w, "            var s{r}: vec4<f32>;");
    }
    let xyzw = ["x", "y", "z", "w"];
    if rows >= 4 * lanes {
        // Transposed A with whole texels: lane l loads 4 rows at each of the 4 k-steps.
        let _ = writeln!(w, "            if (TA && VA) {{");
        for h in 0..rows / (4 * lanes) {
            for u in 0..4 {
                let _ = writeln!(
                    w,
                    "                let t{h}_{u} = a_rows4(abase, i0 + {}u + 4u * lane, k + {u}u);",
                    h * 4 * lanes
                );
            }
            for l in 0..lanes {
                for u in 0..4 {
                    let _ = writeln!(
                        w,
                        "                let e{h}_{u}_{l} = subgroupBroadcast(t{h}_{u}, {l}u);"
                    );
                }
                for (c, x) in xyzw.iter().enumerate() {
                    let _ = writeln!(
                        w,
                        "                s{} = vec4<f32>(e{h}_0_{l}.{x}, e{h}_1_{l}.{x}, e{h}_2_{l}.{x}, e{h}_3_{l}.{x});",
                        h * 4 * lanes + 4 * l + c as u32
                    );
                }
            }
        }
        let _ = writeln!(w, "            }} else {{");
    } else {
        let _ = writeln!(w, "            {{");
    }
    for g in 0..rows / lanes {
        let _ = writeln!(
            w,
            "                let a{g} = a_group(abase, i0 + {}u + lane, k);",
            g * lanes
        );
        for l in 0..lanes {
            let _ = writeln!(
                w,
                "                s{} = subgroupBroadcast(a{g}, {l}u);",
                g * lanes + l
            );
        }
    }
    let _ = writeln!(w, "            }}");
    for r in 0..rows {
        for q in 0..c4 {
            for (u, x) in xyzw.iter().enumerate() {
                let _ = writeln!(w, "            c{r}_{q} += s{r}.{x} * b{q}[{u}];");
            }
        }
    }
    close_loops(w);
    for q in 0..c4 {
        let _ = writeln!(w, "    if (j + {}u < p.n) {{", 4 * q);
        for r in 0..rows {
            let _ = writeln!(
                w,
                "        store4(cbase, i0 + {r}u, j + {}u, c{r}_{q});",
                4 * q
            );
        }
        let _ = writeln!(w, "    }}");
    }
    let _ = writeln!(w, "}}\n");
    s
}

/// A kernel's parameter block, written as 32-bit words in the order of its WGSL struct.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(pub Vec<u32>);

impl Params {
    pub(crate) fn new() -> Params {
        Params(Vec::with_capacity(16))
    }
    /// Appends an unsigned integer.
    pub(crate) fn u(mut self, v: usize) -> Params {
        self.0.push(v as u32);
        self
    }
    /// Appends a float.
    pub(crate) fn f(mut self, v: f32) -> Params {
        self.0.push(v.to_bits());
        self
    }
    /// Appends a `array<vec4<u32>, 2>` holding up to 8 values.
    pub(crate) fn vec8(mut self, v: &[usize]) -> Params {
        for i in 0..8 {
            self.0.push(v.get(i).copied().unwrap_or(0) as u32);
        }
        self
    }
    /// Pads to a multiple of 16 bytes, as uniform structs are.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut w = self.0.clone();
        while !w.len().is_multiple_of(4) {
            w.push(0);
        }
        assert!(
            w.len() * 4 <= PARAMS_SIZE as usize,
            "parameter block too large"
        );
        bytemuck::cast_slice(&w).to_vec()
    }
}

/// Workgroup counts for one workgroup per item, `n` items (a 2-D grid past 65,535).
pub(crate) fn groups_per_item(n: usize) -> [u32; 3] {
    let x = n.clamp(1, 65535);
    [x as u32, n.div_ceil(x).max(1) as u32, 1]
}

/// Workgroup counts for `n` invocations of a 256-wide 1-D kernel, folded into x and y so
/// that no dimension exceeds the adapter's limit; kernels rebuild the index as
/// `gid.x + gid.y * num_workgroups.x * 256`.
pub(crate) fn groups_1d(n: usize) -> [u32; 3] {
    let wg = n.div_ceil(256).max(1);
    let x = wg.min(65535);
    [x as u32, wg.div_ceil(x) as u32, 1]
}

/// The part of a buffer that one binding sees: a whole buffer, or a tensor inside an arena.
#[derive(Clone, Copy)]
pub(crate) struct Slice<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Bytes from the start of the buffer (a multiple of the adapter's offset alignment).
    pub offset: u64,
    /// Bytes seen; `None`: to the end of the buffer.
    pub size: Option<wgpu::BufferSize>,
}

impl<'a> Slice<'a> {
    /// `n` floats from byte `offset`, the size rounded up to 16 bytes (kernels that read
    /// vec4s need it; they never read past `n` for a result).
    pub fn floats(buffer: &'a wgpu::Buffer, offset: u64, n: usize) -> Slice<'a> {
        Slice {
            buffer,
            offset,
            size: wgpu::BufferSize::new((n.max(1) as u64 * 4).next_multiple_of(16)),
        }
    }
}

impl<'a> From<&'a wgpu::Buffer> for Slice<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Slice<'a> {
        Slice {
            buffer,
            offset: 0,
            size: None,
        }
    }
}

/// Makes the bind group of one dispatch: the parameter block at `offset` in `params`, then
/// `buffers` and `textures` in the order of the kernel's signature (unused slots skipped).
pub(crate) fn bind_group(
    ctx: &Context,
    kernel: Kernel,
    params: &wgpu::Buffer,
    offset: u64,
    buffers: &[Slice],
    textures: &[&wgpu::TextureView],
) -> wgpu::BindGroup {
    let pipeline = ctx.pipeline(kernel);
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: params,
            offset,
            size: wgpu::BufferSize::new(PARAMS_SIZE),
        }),
    }];
    let mut next = buffers.iter();
    let mut next_texture = textures.iter();
    for (i, c) in kernel.signature().chars().enumerate() {
        let resource = match c {
            '-' => continue,
            't' => wgpu::BindingResource::TextureView(
                next_texture
                    .next()
                    .expect("bind_group: fewer textures than the signature"),
            ),
            _ => {
                let buf = next
                    .next()
                    .expect("bind_group: fewer buffers than the signature");
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: buf.buffer,
                    offset: buf.offset,
                    size: buf.size,
                })
            }
        };
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource,
        });
    }
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// Runs one kernel once, outside any plan (used for fills and one-off tensor ops).
pub(crate) fn run_once(
    ctx: &Context,
    kernel: Kernel,
    params: &Params,
    buffers: &[Slice],
    groups: [u32; 3],
) -> Result<()> {
    let pbuf = ctx.buffer(
        "params",
        PARAMS_SIZE,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    )?;
    ctx.queue.write_buffer(&pbuf, 0, &params.bytes());
    let bg = bind_group(ctx, kernel, &pbuf, 0, buffers, &[]);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&ctx.pipeline(kernel));
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }
    ctx.submit(enc.finish());
    Ok(())
}
