//! L-BFGS for full-batch training of small, smooth models (most logistic-regression packages
//! use it). The loss and its gradients are computed on the device by the graph; the
//! two-loop recursion and the line search (dot products over the parameter vector) run on the
//! host in f64.

use std::collections::VecDeque;

use crate::device::Context;
use crate::executor::{Executor, Feed};
use crate::graph::{Graph, NodeId};
use crate::{Error, Result};

/// Options of [`lbfgs`].
#[derive(Clone, Copy, Debug)]
pub struct LbfgsOptions {
    /// Correction pairs kept.
    pub history: usize,
    /// Iteration limit.
    pub max_iters: usize,
    /// Stop when the largest gradient component is below this.
    pub grad_tol: f64,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            history: 10,
            max_iters: 200,
            grad_tol: 1e-4,
        }
    }
}

/// What [`lbfgs`] reached.
#[derive(Clone, Copy, Debug)]
pub struct LbfgsReport {
    /// Iterations run.
    pub iterations: usize,
    /// Loss evaluations (each one device pass).
    pub evaluations: usize,
    /// Final mean loss.
    pub loss: f64,
    /// Final largest gradient component.
    pub grad_max: f64,
    /// True when `grad_tol` was reached.
    pub converged: bool,
}

struct Objective {
    exec: Executor,
    params: Vec<NodeId>,
    sizes: Vec<usize>,
    outputs: Vec<NodeId>,
    evaluations: usize,
}

impl Objective {
    fn get(&self) -> Result<Vec<f64>> {
        let mut x = Vec::new();
        for &p in &self.params {
            x.extend(self.exec.parameter(p)?.iter().map(|&v| v as f64));
        }
        Ok(x)
    }

    fn eval(&mut self, x: &[f64], feed: &Feed) -> Result<(f64, Vec<f64>)> {
        let mut off = 0;
        for (&p, &n) in self.params.iter().zip(&self.sizes) {
            let v: Vec<f32> = x[off..off + n].iter().map(|&v| v as f32).collect();
            self.exec.set_parameter(p, &v)?;
            off += n;
        }
        let out = self.exec.eval(&self.outputs, feed)?;
        self.evaluations += 1;
        let g = out[1..].iter().flatten().map(|&v| v as f64).collect();
        Ok((out[0][0] as f64, g))
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises the mean of `loss` over the whole `feed` with respect to every parameter of
/// `graph`, starting from their initial values. Returns the executor holding the solution.
pub fn lbfgs(
    ctx: &Context,
    graph: &Graph,
    loss: NodeId,
    feed: &Feed,
    opts: LbfgsOptions,
) -> Result<(Executor, LbfgsReport)> {
    let mean = graph.reduce_mean(loss, &[])?;
    let params = graph.parameters();
    if params.is_empty() {
        return Err(Error::Invalid("lbfgs: the graph has no parameters".into()));
    }
    let grads = graph.grad(mean, &params)?;
    let sizes = params
        .iter()
        .map(|&p| graph.shape(p).per_sample())
        .collect();
    let mut outputs = vec![mean];
    outputs.extend(grads);
    let mut obj = Objective {
        exec: Executor::new(ctx, graph)?,
        params,
        sizes,
        outputs,
        evaluations: 0,
    };

    let mut x = obj.get()?;
    let (mut f, mut g) = obj.eval(&x, feed)?;
    let mut hist: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new(); // (s, y, 1/(y·s))
    let gmax = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut iterations = 0;
    while iterations < opts.max_iters && gmax(&g) > opts.grad_tol {
        iterations += 1;
        // Two-loop recursion: d = -H·g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(hist.len());
        for (s, y, rho) in hist.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = hist
            .back()
            .map_or(1.0 / gmax(&g).max(1e-12), |(s, y, _)| dot(s, y) / dot(y, y));
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y, rho), a) in hist.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            hist.clear();
            d = g.iter().map(|v| -v / gmax(&g).max(1e-12)).collect();
            slope = dot(&g, &d);
        }
        // Backtracking line search with the Armijo condition, allowing for the f32 rounding
        // of the loss so that the search does not stall at the noise floor.
        let mut t = 1.0;
        let accepted = loop {
            let xn: Vec<f64> = x.iter().zip(&d).map(|(xi, di)| xi + t * di).collect();
            let (fnew, gnew) = obj.eval(&xn, feed)?;
            if fnew.is_finite() && fnew <= f + 1e-4 * t * slope + 1e-7 * f.abs() {
                break Some((xn, fnew, gnew));
            }
            t *= 0.5;
            if t < 1e-12 {
                break None; // no decrease is measurable any more in f32
            }
        };
        let Some((xn, fn_, gn)) = accepted else { break };
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if hist.len() == opts.history {
                hist.pop_front();
            }
            hist.push_back((s, y, 1.0 / sy));
        }
        (x, f, g) = (xn, fn_, gn);
    }
    // Leave the device holding the final point.
    obj.eval(&x, feed)?;
    let converged = gmax(&g) <= opts.grad_tol;
    Ok((
        obj.exec,
        LbfgsReport {
            iterations,
            evaluations: obj.evaluations,
            loss: f,
            grad_max: gmax(&g),
            converged,
        },
    ))
}
