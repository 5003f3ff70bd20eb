//! Unit tests of the routes of `connector-tailscale`.

use super::*;

#[test]
fn instructions_never_touch_the_acl() {
    let text = instructions("tail1234.ts.net").join("\n");
    assert!(text.contains("tail1234.ts.net"));
    assert!(text.contains("never changes your tailnet's policy file"));
}
