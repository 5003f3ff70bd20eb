//! docs/adding-a-provider.md quotes this crate's `src/main.rs` verbatim; this test keeps them equal.

#[test]
fn the_guide_quotes_main_rs_verbatim() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let main = std::fs::read_to_string(format!("{dir}/src/main.rs")).unwrap();
    let guide = std::fs::read_to_string(format!("{dir}/../../docs/adding-a-provider.md")).unwrap();
    // The guide indents the block by two spaces (it sits in a list item).
    let quoted: String = main
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("  {l}\n")
            }
        })
        .collect();
    assert!(
        guide.contains(&format!("  ```rust,ignore\n{quoted}  ```\n")),
        "docs/adding-a-provider.md no longer quotes examples/custom-gateway/src/main.rs verbatim"
    );
}
