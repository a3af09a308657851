//! Parses and validates every WGSL file with naga; needs no GPU.

use std::fs;

#[test]
fn every_wgsl_file_parses_and_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut seen = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let src = fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        seen += 1;
    }
    assert_eq!(
        seen,
        wgrad::kernels::Shader::ALL.len(),
        "every shader file is registered"
    );
}

#[test]
fn registry_sources_match_files() {
    for s in wgrad::kernels::Shader::ALL {
        let path = format!("{}/shaders/{}", env!("CARGO_MANIFEST_DIR"), s.file_name());
        assert_eq!(fs::read_to_string(&path).unwrap(), s.source(), "{path}");
    }
}
