//! Training curves as a PNG (plotters): loss and metric per epoch, training and evaluation.
//! Labels use a system font (DejaVu Sans, Liberation Sans, Arial or Helvetica) when one is
//! found; without one the curves are drawn unlabelled.

use std::path::Path;

use plotters::prelude::*;

use super::records::EpochRecord;
use crate::{Error, Result};

#[cfg(not(target_arch = "wasm32"))]
const FONT_PATHS: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a system font with plotters once; false when none exists.
#[cfg(not(target_arch = "wasm32"))]
fn font_available() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// On wasm32 there is no font file to read (plotters draws text in the browser there).
#[cfg(target_arch = "wasm32")]
fn font_available() -> bool {
    false
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("plot: {e}"))
}

/// Draws loss (left) and metric (right) against the epoch into a PNG at `path`, written
/// atomically.
pub fn plot_curves(path: &Path, records: &[EpochRecord]) -> Result<()> {
    let (w, h) = (1000u32, 420u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let panels = root.split_evenly((1, 2));
        let labelled = font_available();
        type Get = fn(&EpochRecord) -> f32;
        let series: [(&str, Get, Get); 2] = [
            ("loss", |r| r.train_loss, |r| r.test_loss),
            ("metric", |r| r.train_metric, |r| r.test_metric),
        ];
        for (panel, (name, train, test)) in panels.iter().zip(series) {
            let vals: Vec<f32> = records
                .iter()
                .flat_map(|r| [train(r), test(r)])
                .filter(|v| v.is_finite())
                .collect();
            let top = vals.iter().cloned().fold(0.0f32, f32::max).max(1e-6) * 1.05;
            let last = records.last().map_or(1, |r| r.epoch).max(2) as f32;
            let mut builder = ChartBuilder::on(panel);
            builder.margin(15);
            if labelled {
                builder
                    .caption(name, ("sans-serif", 20))
                    .x_label_area_size(35)
                    .y_label_area_size(55);
            }
            let mut chart = builder
                .build_cartesian_2d(1f32..last, 0f32..top)
                .map_err(err)?;
            let mut mesh = chart.configure_mesh();
            if labelled {
                mesh.x_desc("epoch");
            } else {
                mesh.disable_x_axis().disable_y_axis();
            }
            mesh.draw().map_err(err)?;
            for (label, get, color) in [("train", train, BLUE), ("test", test, RED)] {
                let pts: Vec<(f32, f32)> = records
                    .iter()
                    .map(|r| (r.epoch as f32, get(r)))
                    .filter(|p| p.1.is_finite())
                    .collect();
                let s = chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(err)?;
                if labelled {
                    s.label(label)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                }
            }
            if labelled {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    write_png(path, w, h, &rgb)
}

/// Writes `rgb` (8-bit RGB, row by row, `width × height` pixels) as a PNG at `path`, through
/// [`crate::files::write_atomic`].
pub fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<()> {
    use image::ImageEncoder;
    if rgb.len() as u64 != width as u64 * height as u64 * 3 {
        return Err(err(format!(
            "{} bytes for a {width}×{height} RGB image",
            rgb.len()
        )));
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb, width, height, image::ColorType::Rgb8)
        .map_err(err)?;
    crate::files::write_atomic(path, &png)
}
