//! Compiles `proto/*.proto` with protox (pure Rust), so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["proto/podnet.proto"], ["proto"])?;
    // The API's method names, for labels that must stay a closed set.
    let methods: Vec<String> = fds
        .file
        .iter()
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == "Api")
        .flat_map(|s| &s.method)
        .map(|m| format!("{:?}", m.name()))
        .collect();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("api_methods.rs"),
        format!("&[{}]", methods.join(", ")),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
