//! CNTK 105: the MNIST autoencoder learns to reconstruct digits (needs the shared MNIST data).

#[path = "../examples/autoencoder.rs"]
#[allow(dead_code)]
mod autoencoder;
mod common;

#[test]
fn autoencoder_reconstructs_test_digits() {
    let Some(dir) = common::mnist_dir() else {
        return;
    };
    let ctx = common::ctx();
    let (train, test) = wgrad::data::mnist::load(&dir).unwrap();
    // Before training: the loss of the initial weights on the test digits.
    let g = wgrad::Graph::with_seed(0);
    let (x, loss, _) = autoencoder::graph(&g).unwrap();
    let mut fresh = wgrad::Trainer::new(&ctx, &g, loss, None, wgrad::Learner::adam(1e-3)).unwrap();
    let before = fresh.evaluate(&test, &[("images", x)], 250).unwrap().loss;
    let opts = wgrad::FitOptions {
        epochs: 2,
        batch: 64,
        shuffle_seed: Some(0),
        progress: false,
        print_epochs: false,
        ..Default::default()
    };
    let (mut t, x, out, test_loss) = autoencoder::train(&ctx, &dir, 1e-3, 0, &opts).unwrap();
    // 784 pixels at ln 2 each is 543 for the untrained net; two epochs reach about 155 (ten:
    // 95).
    assert!(
        test_loss < 170.0 && test_loss < before / 3.0,
        "{before} → {test_loss}"
    );
    // Reconstructions are in 0..1 and close to the digits they came from.
    let digits = &train.stream("images").unwrap()[..784 * 4];
    let r = t.eval(&[out], &[(x, digits)]).unwrap().remove(0);
    assert!(r.iter().all(|v| (0.0..=1.0).contains(v)));
    let err: f32 = r
        .iter()
        .zip(digits)
        .map(|(a, b)| (a - b / 255.0).abs())
        .sum::<f32>()
        / r.len() as f32;
    println!("mean absolute pixel error {err}");
    assert!(err < 0.15, "mean absolute pixel error {err}");
}
