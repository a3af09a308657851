//! `src/onnx/generated.rs` is prost-build's code for the published ONNX schema
//! (`src/onnx/onnx.proto`, from the onnx 1.23.2 package): this test regenerates it (protox
//! parses the schema, so no `protoc` is needed) and fails if the checked-in file differs.
//! To update it after changing the schema or prost, run
//! `WGRAD_WRITE_ONNX_CODE=1 cargo test --test onnx_schema`.

use std::path::Path;

#[test]
fn generated_code_matches_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("src/onnx");
    let fds = protox::compile(["onnx.proto"], [&dir]).expect("the schema parses");
    let out = std::env::temp_dir().join(format!("wgrad-onnx-code-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    prost_build::Config::new()
        .disable_comments(["."])
        .out_dir(&out)
        .compile_fds(fds)
        .expect("prost-build generates the code");
    let fresh = std::fs::read_to_string(out.join("onnx.rs")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let path = dir.join("generated.rs");
    if std::env::var_os("WGRAD_WRITE_ONNX_CODE").is_some() {
        wgrad::files::write_atomic(&path, fresh.as_bytes()).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        checked_in == fresh,
        "src/onnx/generated.rs is not prost-build's code for src/onnx/onnx.proto: \
         regenerate it with WGRAD_WRITE_ONNX_CODE=1 cargo test --test onnx_schema"
    );
}
