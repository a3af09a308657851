//! Parameter arenas (trainable parameters side by side in a few buffers, so that a learner
//! updates many in one dispatch), the learner's gradient and state arenas, and parameter
//! initialisation.

use super::{Executor, Pass};
use crate::device::{Buffer, Context};
use crate::dtype::DType;
use crate::graph::{Init, Node, NodeId, Op};
use crate::kernels::contract::Hyper;
use crate::kernels::Rule;
use crate::tensor::{Fill, Tensor};
use crate::{Error, Result};

/// Parameters, their gradients and the learner's state are f32.
pub(super) const PARAM_DTYPE: DType = DType::F32;

/// How a learner updates each parameter (produced by the learners in `optim`).
#[derive(Clone, Debug)]
pub(crate) struct UpdateRule {
    /// The update rule; it keeps `kind.states()` state tensors per parameter (e.g. 1 for
    /// momentum).
    pub kind: Rule,
    /// The hyper-parameter uniform (see `shaders/optim.wgsl`).
    pub hyper: Hyper,
}

pub(super) struct LearnerState {
    pub(super) rule: UpdateRule,
    /// Scalar node: the gradient clipping factor (a constant 1 without clipping).
    pub(super) clip: NodeId,
    /// (parameter, its gradient node, its state tensors)
    pub(super) params: Vec<(NodeId, NodeId, Vec<Tensor>)>,
    pub(super) hyper: Buffer,
    /// Per parameter arena: the gradient arena, the state arenas, and the runs of
    /// consecutive parameters the learner updates, each as (byte offset, floats,
    /// (gradient node, byte offset) of its parameters).
    pub(super) arenas: Vec<LearnerArena>,
    /// The per-sample loss the numerics guard looks at.
    pub(super) loss: NodeId,
    /// The numerics guard's words (`guard.rs`).
    pub(super) guard: Buffer,
}

/// Consecutive parameters that one update dispatch covers: byte offset, floats, and the
/// gradient node and byte offset of each parameter.
pub(super) type UpdateRun = (u64, usize, Vec<(NodeId, u64)>);

/// Trainable parameters of one arena: (parameter, byte offset, elements), in offset order.
pub(super) type ArenaMembers = Vec<(NodeId, u64, usize)>;

pub(super) struct LearnerArena {
    pub(super) params: Buffer,
    pub(super) grads: Buffer,
    pub(super) states: Vec<Buffer>,
    pub(super) runs: Vec<UpdateRun>,
}

/// Trainable parameters stored side by side in one buffer, each at an offset aligned for
/// binding, so that a learner updates all of them in one dispatch.
pub(super) struct ParamArena {
    pub(super) buffer: Buffer,
    pub(super) floats: usize,
    pub(super) members: ArenaMembers,
}

impl Executor {
    /// Installs the update rule of a learner for `(parameter, gradient)` pairs.
    pub(crate) fn set_learner(
        &mut self,
        rule: UpdateRule,
        pairs: &[(NodeId, NodeId)],
        clip: NodeId,
        loss: NodeId,
    ) -> Result<()> {
        let hyper = self.ctx.buffer(
            "learner hyper-parameters",
            48,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        self.ctx
            .queue
            .write_buffer(&hyper, 0, bytemuck::bytes_of(&rule.hyper));
        // Gradients and learner state mirror the layout of the parameter arenas.
        let mut arenas = Vec::new();
        let mut params = Vec::new();
        for a in &self.arenas {
            let grads = self.ctx.storage("gradient arena", a.floats, PARAM_DTYPE)?;
            let states = (0..rule.kind.states())
                .map(|_| {
                    self.ctx
                        .storage("learner state arena", a.floats, PARAM_DTYPE)
                })
                .collect::<Result<Vec<_>>>()?;
            // Runs of consecutive members that the learner updates.
            let mut runs: Vec<UpdateRun> = Vec::new();
            let mut open = false;
            for &(p, offset, len) in &a.members {
                let Some(&(_, g)) = pairs.iter().find(|pg| pg.0 == p) else {
                    open = false;
                    continue;
                };
                let dims = self.nodes[p.0].shape.resolve(1);
                let state = states
                    .iter()
                    .map(|b| Tensor::view(b, offset, &dims))
                    .collect();
                params.push((p, g, state));
                let end = offset + (len * PARAM_DTYPE.size()) as u64;
                match runs.last_mut().filter(|_| open) {
                    Some(run) => {
                        run.1 = (end - run.0) as usize / PARAM_DTYPE.size();
                        run.2.push((g, offset));
                    }
                    None => runs.push((offset, len, vec![(g, offset)])),
                }
                open = true;
            }
            arenas.push(LearnerArena {
                params: a.buffer.clone(),
                grads,
                states,
                runs,
            });
        }
        if let Some(&(p, _)) = pairs.iter().find(|pg| !params.iter().any(|q| q.0 == pg.0)) {
            return Err(Error::Invalid(format!(
                "learner: node {} is not a trainable parameter",
                p.0
            )));
        }
        let runs = arenas.iter().map(|a| a.runs.len()).sum();
        let words = super::guard::guard_words(runs);
        let guard = self.ctx.storage_bytes("numerics guard", words as u64 * 4)?;
        let cleared = super::guard::cleared(words);
        self.ctx
            .queue
            .write_buffer(&guard, 0, bytemuck::cast_slice(&cleared));
        self.plans.retain(|k| k.1 != Pass::Train);
        self.learner = Some(LearnerState {
            rule,
            clip,
            params,
            hyper,
            arenas,
            loss,
            guard,
        });
        Ok(())
    }

    /// Rewrites the learner's hyper-parameters (e.g. a new learning rate); no re-planning.
    pub(crate) fn set_hyper(&mut self, mut hyper: Hyper) {
        // The step about to run, for the numerics guard.
        hyper.step = self.step.wrapping_add(1) as u32;
        if let Some(l) = self.learner.as_mut().filter(|l| l.rule.hyper != hyper) {
            l.rule.hyper = hyper;
            self.ctx
                .queue
                .write_buffer(&l.hyper, 0, bytemuck::bytes_of(&hyper));
        }
    }
}

/// The fill for a parameter initialiser. Fans follow the usual conventions: for a matrix
/// `[in, out]`, fan_in = in and fan_out = out; for a filter `[out, in, k…]` the receptive
/// field multiplies both.
pub(super) fn init_fill(init: Init, dims: &[usize], seed: u64) -> Fill {
    let (fan_in, fan_out) = match dims.len() {
        0 => (1, 1),
        1 => (dims[0], dims[0]),
        2 => (dims[0], dims[1]),
        _ => {
            let rf: usize = dims[2..].iter().product();
            (dims[1] * rf, dims[0] * rf)
        }
    };
    match init {
        Init::Zeros => Fill::Const(0.0),
        Init::Const(v) => Fill::Const(v),
        Init::Uniform { low, high } => Fill::Uniform { low, high, seed },
        Init::Normal { mean, std } => Fill::Normal { mean, std, seed },
        Init::GlorotUniform => {
            let l = (6.0 / (fan_in + fan_out) as f32).sqrt();
            Fill::Uniform {
                low: -l,
                high: l,
                seed,
            }
        }
        Init::HeNormal => Fill::Normal {
            mean: 0.0,
            std: (2.0 / fan_in as f32).sqrt(),
            seed,
        },
        Init::Orthogonal { .. } | Init::Given => {
            unreachable!("host-made initial values are written, not filled")
        }
    }
}

/// An orthogonal initial matrix for `dims` flattened to `[dims[0], rest]`: Gram–Schmidt
/// (twice, in f64) on a seeded normal matrix, orthonormal along the shorter side, times `gain`.
pub(super) fn orthogonal(dims: &[usize], seed: u64, gain: f32) -> Vec<f32> {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let rows = dims.first().copied().unwrap_or(1);
    let cols = dims.iter().skip(1).product::<usize>();
    // Orthonormalise `k` vectors of length `n`: the rows, or the columns when fewer.
    let (k, n) = if rows <= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6f72_7468);
    let mut normal = || {
        // Box–Muller from two uniforms in (0, 1].
        let (a, b): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    };
    let mut v: Vec<Vec<f64>> = (0..k).map(|_| (0..n).map(|_| normal()).collect()).collect();
    for i in 0..k {
        for _ in 0..2 {
            let (done, rest) = v.split_at_mut(i);
            for vj in done.iter() {
                let d: f64 = rest[0].iter().zip(vj).map(|(a, b)| a * b).sum();
                rest[0].iter_mut().zip(vj).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm = v[i].iter().map(|a| a * a).sum::<f64>().sqrt();
        v[i].iter_mut().for_each(|a| *a /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for (i, vi) in v.iter().enumerate() {
        for (j, &x) in vi.iter().enumerate() {
            let at = if rows <= cols {
                i * cols + j
            } else {
                j * cols + i
            };
            out[at] = (x * gain as f64) as f32;
        }
    }
    out
}

/// Lays out the trainable parameters in arenas (each within the adapter's largest binding)
/// and allocates them; the caller initialises each parameter's view.
pub(super) fn param_arenas(ctx: &Context, nodes: &[Node]) -> Result<Vec<ParamArena>> {
    // Offsets aligned for binding, and every slice a whole number of 16-byte vec4s.
    let align = (ctx.limits.min_storage_buffer_offset_alignment as u64).max(16);
    let max = ctx.max_binding_bytes();
    let mut layouts: Vec<(u64, ArenaMembers)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if !matches!(
            node.op,
            Op::Param {
                trainable: true,
                ..
            }
        ) {
            continue;
        }
        let len: usize = node.shape.resolve(1).iter().product();
        let bytes = ((len.max(1) * PARAM_DTYPE.size()) as u64).next_multiple_of(16);
        let fits = |end: u64| end.next_multiple_of(align) + bytes <= max;
        match layouts.last_mut().filter(|l| fits(l.0)) {
            Some(l) => {
                let offset = l.0.next_multiple_of(align);
                l.1.push((NodeId::at(i), offset, len));
                l.0 = offset + bytes;
            }
            None => layouts.push((bytes, vec![(NodeId::at(i), 0, len)])),
        }
    }
    layouts
        .into_iter()
        .map(|(end, members)| {
            let floats = end as usize / PARAM_DTYPE.size();
            Ok(ParamArena {
                buffer: ctx.storage("parameter arena", floats, PARAM_DTYPE)?,
                floats,
                members,
            })
        })
        .collect()
}
