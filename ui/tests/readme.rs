//! The README's key table is the keymap: a key added, removed or re-described in `keymap.rs` without the
//! README following fails here, so the documentation cannot drift from the keys.

use std::path::Path;

#[test]
fn readme_key_table_is_the_keymap() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let keymap = perpdesk_ui::keymap_markdown();
    assert!(
        readme.contains(&keymap),
        "README.md's `## Keys` section must be exactly:\n\n{keymap}"
    );
}
