//! Generated matmul entry points. lavapipe keeps dynamically indexed local arrays in
//! memory, so every block loop is written out; these functions write them. Each family's
//! entry points are listed in one table, and their names come from the same table
//! ([`subgroup_entry`], [`texture_entry`]), so kernel choice and generation cannot disagree.

use std::fmt::Write;
use std::sync::OnceLock;

use super::source::Shader;

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

/// Rows and columns of C per invocation of the register-blocked kernel (matmul.wgsl).
const REGISTER_BLOCK: u32 = 8;

/// The generated entry points of `shader` (empty for the other families).
pub(crate) fn entry_points(shader: Shader) -> String {
    match shader {
        Shader::Matmul => register_entry_point(),
        Shader::MatmulSubgroup => SUBGROUP_BLOCKS
            .iter()
            .map(|&(lanes, rows)| subgroup_entry_point(lanes, rows))
            .collect(),
        Shader::MatmulTexture => TEXTURE_BLOCKS
            .iter()
            .map(|&(lanes, rows, c4)| texture_entry_point(lanes, rows, c4))
            .collect(),
        _ => String::new(),
    }
}

/// The name of the subgroup entry point for `(lanes, rows)`, one of [`SUBGROUP_BLOCKS`].
pub(crate) fn subgroup_entry(lanes: u32, rows: u32) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        SUBGROUP_BLOCKS
            .iter()
            .map(|&(l, r)| format!("main{l}_r{r}"))
            .collect()
    });
    let k = SUBGROUP_BLOCKS
        .iter()
        .position(|&b| b == (lanes, rows))
        .unwrap_or_else(|| panic!("no subgroup block ({lanes}, {rows})"));
    &names[k]
}

/// The name of the texture entry point for `(lanes, rows, c4)`, one of [`TEXTURE_BLOCKS`].
pub(crate) fn texture_entry(lanes: u32, rows: u32, c4: u32) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        TEXTURE_BLOCKS
            .iter()
            .map(|&(l, r, c)| format!("tex{l}_r{r}_c{c}"))
            .collect()
    });
    let k = TEXTURE_BLOCKS
        .iter()
        .position(|&b| b == (lanes, rows, c4))
        .unwrap_or_else(|| panic!("no texture block ({lanes}, {rows}, {c4})"));
    &names[k]
}

/// WGSL of matmul.wgsl's `main`: each invocation accumulates an 8×8 block of C in 16 vec4
/// registers (`c{r}l`, `c{r}h`: row r, columns 0–3 and 4–7), four k-steps at a time, then
/// the leftover k-steps one at a time.
fn register_entry_point() -> String {
    let n = REGISTER_BLOCK;
    let xyzw = ["x", "y", "z", "w"];
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "@compute @workgroup_size(8, 8, 1)");
    let _ = writeln!(
        w,
        "fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{"
    );
    let _ = writeln!(w, "    let i0 = gid.y * {n}u;\n    let j0 = gid.x * {n}u;");
    let _ = writeln!(
        w,
        "    if (i0 >= p.m || j0 >= p.n) {{\n        return;\n    }}"
    );
    let _ = writeln!(w, "    let zero = vec4<f32>(0.0);");
    for r in 0..n {
        let _ = writeln!(w, "    var c{r}l = zero;\n    var c{r}h = zero;");
    }
    let _ = writeln!(
        w,
        "    for (var z = gid.z; z < gid.z + max(p.zsum, 1u); z++) {{"
    );
    let _ = writeln!(
        w,
        "    let abase = z * p.a_batch;\n    let bbase = z * p.b_batch;"
    );
    let _ = writeln!(w, "    let k4 = p.k & ~3u;");
    let _ = writeln!(w, "    for (var k0 = 0u; k0 < k4; k0 += 4u) {{");
    let _ = writeln!(w, "        // a{{r}} = op(A)[i0 + r, k0 .. k0 + 4]");
    for r in 0..n {
        let _ = writeln!(w, "        var a{r}: vec4<f32>;");
    }
    let _ = writeln!(w, "        if (TA && VA) {{");
    let _ = writeln!(
        w,
        "            // Columns of the stored A are contiguous along the rows of op(A)."
    );
    for u in 0..4 {
        let at = |lo: &str| format!("a[(abase + (k0 + {u}u) * p.m + i0{lo}) / 4u]");
        let _ = writeln!(w, "            let l{u} = {};", at(""));
        let _ = writeln!(
            w,
            "            let h{u} = select(zero, {}, i0 + 4u < p.m);",
            at(" + 4u")
        );
    }
    for (c, x) in xyzw.iter().enumerate() {
        let _ = writeln!(
            w,
            "            a{c} = vec4<f32>(l0.{x}, l1.{x}, l2.{x}, l3.{x});"
        );
        let _ = writeln!(
            w,
            "            a{} = vec4<f32>(h0.{x}, h1.{x}, h2.{x}, h3.{x});",
            c + 4
        );
    }
    let _ = writeln!(w, "        }} else {{");
    for r in 0..n {
        let _ = writeln!(w, "            a{r} = a_row4(abase, i0 + {r}u, k0);");
    }
    let _ = writeln!(w, "        }}");
    let _ = writeln!(
        w,
        "        // b{{kk}}l, b{{kk}}h = op(B)[k0 + kk, j0 .. j0 + 4] and [j0 + 4 .. j0 + 8]"
    );
    for u in 0..4 {
        let _ = writeln!(
            w,
            "        var b{u}l: vec4<f32>;\n        var b{u}h: vec4<f32>;"
        );
    }
    let _ = writeln!(w, "        if (TB && VB) {{");
    let _ = writeln!(
        w,
        "            // Rows of the stored B are contiguous along k."
    );
    for t in 0..n {
        let _ = writeln!(
            w,
            "            let t{t} = b[(bbase + min(j0 + {t}u, p.n - 1u) * p.k + k0) / 4u];"
        );
    }
    for (u, x) in xyzw.iter().enumerate() {
        let _ = writeln!(
            w,
            "            b{u}l = vec4<f32>(t0.{x}, t1.{x}, t2.{x}, t3.{x});"
        );
        let _ = writeln!(
            w,
            "            b{u}h = vec4<f32>(t4.{x}, t5.{x}, t6.{x}, t7.{x});"
        );
    }
    let _ = writeln!(w, "        }} else {{");
    for u in 0..4 {
        let _ = writeln!(w, "            b{u}l = b_row4(bbase, k0 + {u}u, j0);");
        let _ = writeln!(w, "            b{u}h = b_row4(bbase, k0 + {u}u, j0 + 4u);");
    }
    let _ = writeln!(w, "        }}");
    for (u, x) in xyzw.iter().enumerate() {
        for r in 0..n {
            let _ = writeln!(w, "        c{r}l += a{r}.{x} * b{u}l;");
            let _ = writeln!(w, "        c{r}h += a{r}.{x} * b{u}h;");
        }
    }
    let _ = writeln!(w, "    }}");
    let _ = writeln!(
        w,
        "    // Leftover k when K is not a multiple of 4, one at a time."
    );
    let _ = writeln!(w, "    for (var kk = k4; kk < p.k; kk++) {{");
    let elems = |from: u32| {
        (from..from + 4)
            .map(|j| {
                if j == 0 {
                    "b_elem(bbase, kk, j0)".to_string()
                } else {
                    format!("b_elem(bbase, kk, j0 + {j}u)")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(w, "        let lo = vec4<f32>({});", elems(0));
    let _ = writeln!(w, "        let hi = vec4<f32>({});", elems(4));
    for r in 0..n {
        let _ = writeln!(w, "        let x{r} = a_elem(abase, i0 + {r}u, kk);");
        let _ = writeln!(
            w,
            "        c{r}l += x{r} * lo;\n        c{r}h += x{r} * hi;"
        );
    }
    let _ = writeln!(w, "    }}\n    }}");
    let _ = writeln!(w, "    let cbase = gid.z * p.m * p.n;");
    for r in 0..n {
        let _ = writeln!(w, "    store_row(i0 + {r}u, j0, cbase, c{r}l, c{r}h);");
    }
    let _ = writeln!(w, "}}\n");
    s
}

/// Opens a generated matmul entry point `name`: one subgroup of `lanes` lanes per workgroup,
/// block rows from `i0`, and the lane's first column `j` (`cols` columns per lane).
fn open_entry_point(w: &mut String, name: &str, lanes: u32, rows: u32, cols: u32) {
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
    let _ = writeln!(
        w,
        "    for (var z = wid.z; z < wid.z + max(p.zsum, 1u); z++) {{\n        \
         let abase = z * p.a_batch;\n        let bbase = z * p.b_batch;\n        \
         for (var k = 0u; k < p.k; k += {k_step}u) {{"
    );
}

/// Closes the loops `open_loops` opened and sets `cbase`, where this output starts in C.
fn close_loops(w: &mut String) {
    let _ = writeln!(w, "        }}\n    }}\n    let cbase = wid.z * p.m * p.n;");
}

/// WGSL of the subgroup matmul's entry point `main{lanes}_r{rows}` (see
/// matmul_subgroup.wgsl): lane `l` accumulates rows `i0 + r` of its 4 columns in `c{r}`,
/// loading rows `i0 + q·lanes + l` of A and sharing them with subgroupBroadcast.
fn subgroup_entry_point(lanes: u32, rows: u32) -> String {
    let mut s = String::new();
    let w = &mut s;
    open_entry_point(w, subgroup_entry(lanes, rows), lanes, rows, 4);
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

/// WGSL of the texture matmul's entry point `tex{lanes}_r{rows}_c{c4}` (see
/// matmul_texture.wgsl): lane `l` accumulates rows `i0 + r` of its columns `j + 4q ..` in
/// `c{r}_{q}`, 4 k-steps at a time, sharing rows `i0 + g·lanes + l` of A (or, transposed,
/// rows `i0 + h·4·lanes + 4l ..`) through subgroupBroadcast. The k-steps are added in order,
/// as in the subgroup kernel.
fn texture_entry_point(lanes: u32, rows: u32, c4: u32) -> String {
    let mut s = String::new();
    let w = &mut s;
    open_entry_point(w, texture_entry(lanes, rows, c4), lanes, rows, 4 * c4);
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
