//! The adapter the tests run on is the one the environment asks for: with `WGPU_BACKEND`
//! set (CI runs the kernel and op tests with `WGPU_BACKEND=gl`), a test run that silently
//! fell back to another backend would prove nothing about the one named.

mod common;

#[test]
fn the_adapter_is_the_one_the_environment_names() {
    let ctx = common::ctx();
    let a = ctx.adapter();
    println!(
        "adapter: {} ({:?}), subgroups: {:?}",
        a.name,
        a.backend,
        ctx.subgroup_size()
    );
    if let Some(wanted) = wgpu::Backends::from_env() {
        assert!(
            wanted.contains(a.backend.into()),
            "WGPU_BACKEND asks for {wanted:?}, but the tests run on {:?} ({})",
            a.backend,
            a.name
        );
    }
    if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
        assert!(
            a.name.to_lowercase().contains(&name.to_lowercase()),
            "WGPU_ADAPTER_NAME asks for {name:?}, but the tests run on {}",
            a.name
        );
    }
    if a.backend == wgpu::Backend::Gl {
        // GL has no subgroup operations: products take the kernels without them.
        assert_eq!(ctx.subgroup_size(), None, "GL adapter with subgroups?");
    }
}
