//! WAMP URI rules (digest §4), by hand instead of regexes: a URI is components separated by
//! `.`; loose components exclude `.`, `#` and whitespace, strict ones are `[0-9a-z_]`. Empty
//! components are allowed only for pattern-based (wildcard) subscriptions/registrations.

/// Whether `uri` is valid under the loose or `strict` rule; `allow_empty_components` accepts
/// the wildcard-pattern form (empty components, including the empty URI).
///
/// Regexes implemented (digest §4):
/// * loose: `^([^\s\.#]+\.)*([^\s\.#]+)$`, with empties `^(([^\s\.#]+\.)|\.)*([^\s\.#]+)?$`
/// * strict: `^([0-9a-z_]+\.)*([0-9a-z_]+)$`, with empties `^(([0-9a-z_]+\.)|\.)*([0-9a-z_]+)?$`
pub fn validate_uri(uri: &str, strict: bool, allow_empty_components: bool) -> bool {
    if strict {
        // Strict URIs are ASCII, so a byte walk is exact.
        let mut component_len = 0usize;
        for &b in uri.as_bytes() {
            match b {
                b'.' => {
                    if component_len == 0 && !allow_empty_components {
                        return false;
                    }
                    component_len = 0;
                }
                b'0'..=b'9' | b'a'..=b'z' | b'_' => component_len += 1,
                _ => return false,
            }
        }
        component_len > 0 || allow_empty_components
    } else {
        let mut component_len = 0usize;
        for c in uri.chars() {
            match c {
                '.' => {
                    if component_len == 0 && !allow_empty_components {
                        return false;
                    }
                    component_len = 0;
                }
                '#' => return false,
                c if c.is_whitespace() => return false,
                _ => component_len += 1,
            }
        }
        component_len > 0 || allow_empty_components
    }
}

#[cfg(test)]
mod tests {
    use super::validate_uri;

    /// (uri, loose, loose with empties, strict, strict with empties)
    const CASES: &[(&str, bool, bool, bool, bool)] = &[
        ("", false, true, false, true),
        (".", false, true, false, true),
        ("..", false, true, false, true),
        ("a", true, true, true, true),
        ("com.myapp.topic1", true, true, true, true),
        ("a..b", false, true, false, true),
        ("a.b.", false, true, false, true),
        (".a", false, true, false, true),
        ("a b", false, false, false, false),
        ("a\tb", false, false, false, false),
        ("a.\u{a0}.b", false, false, false, false),
        ("a#b", false, false, false, false),
        ("#", false, false, false, false),
        ("A.b", true, true, false, false),
        ("com.my-app.topic", true, true, false, false),
        ("wamp.session.on_join", true, true, true, true),
        ("com.\u{e9}t\u{e9}.\u{1f600}", true, true, false, false),
        ("com..topic.", false, true, false, true),
        ("_x.9", true, true, true, true),
    ];

    #[test]
    fn regexes_of_digest_section_4() {
        for &(uri, loose, loose_empty, strict, strict_empty) in CASES {
            assert_eq!(validate_uri(uri, false, false), loose, "loose {uri:?}");
            assert_eq!(
                validate_uri(uri, false, true),
                loose_empty,
                "loose+empty {uri:?}"
            );
            assert_eq!(validate_uri(uri, true, false), strict, "strict {uri:?}");
            assert_eq!(
                validate_uri(uri, true, true),
                strict_empty,
                "strict+empty {uri:?}"
            );
        }
    }
}
