//! Parses and validates every shader with naga; needs no GPU.

use std::fs;

use wgrad::kernels::Shader;

#[test]
fn every_shader_parses_and_validates() {
    for s in Shader::ALL {
        let src = s.source();
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{}: {}", s.module_name(), e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", s.module_name(), e.emit_to_string(src)));
    }
}

#[test]
fn every_wgsl_file_is_compiled_in() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut files = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        files += 1;
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            Shader::ALL.iter().any(|s| s.source().contains(&text)),
            "{} is not used by any shader",
            path.display()
        );
    }
    // Every registered shader ends with its own file.
    for s in Shader::ALL {
        let path = format!("{dir}/{}", s.file_name());
        assert!(
            s.source().ends_with(&fs::read_to_string(&path).unwrap()),
            "{path}"
        );
    }
    assert_eq!(
        files,
        Shader::ALL.len() - 1 + 8,
        "the shader files (optim.wgsl serves two shaders) and the window, grid, activation, \
         product, lanes, scan and the two optim operand preludes"
    );
}
