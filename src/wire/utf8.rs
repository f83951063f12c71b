//! The one UTF-8 check for text arriving from the network (WebSocket text frames, MessagePack
//! strs): short strings, nearly always ASCII in WAMP, take the word-wise ASCII scan; long ones
//! the SIMD validator, which checks 32-64 bytes per step.

/// Below this many bytes the ASCII scan wins over the SIMD validator's set-up.
const SIMD_FROM: usize = 64;

/// True when `bytes` is valid UTF-8.
#[inline]
pub fn is_utf8(bytes: &[u8]) -> bool {
    if bytes.len() < SIMD_FROM {
        is_ascii(bytes) || std::str::from_utf8(bytes).is_ok()
    } else {
        simdutf8::basic::from_utf8(bytes).is_ok()
    }
}

/// True when every byte of `bytes` is ASCII. A word at a time, the last word overlapping the
/// one before it: for the 8-40 byte URIs and keys of WAMP messages the standard library's check
/// goes a byte at a time below 16 bytes and costs several times as much.
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = bytes.len();
    if n < 8 {
        if n >= 4 {
            let first = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let last = u32::from_le_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]]);
            return (first | last) & 0x8080_8080 == 0;
        }
        return bytes.iter().all(|&byte| byte < 0x80);
    }
    let word = |at: usize| {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(eight)
    };
    let mut seen = word(n - 8);
    let mut at = 0;
    while at + 8 < n {
        seen |= word(at);
        at += 8;
    }
    seen & HIGH == 0
}

/// For text arriving in pieces (WebSocket fragments): the length of the longest prefix of
/// `bytes` that is UTF-8 ending on a char boundary, provided what follows it is only the start
/// of a char that more bytes may complete; `None` when no continuation can make `bytes` valid.
/// Checking each piece as it comes fails a bad message at its first bad byte, not at its end.
pub fn utf8_complete_prefix(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < SIMD_FROM && bytes.is_ascii() {
        return Some(bytes.len());
    }
    match simdutf8::compat::from_utf8(bytes) {
        Ok(_) => Some(bytes.len()),
        Err(e) if e.error_len().is_none() => Some(e.valid_up_to()),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_prefix_stops_before_an_unfinished_char_and_fails_a_bad_one() {
        let euro = "\u{20ac}".as_bytes(); // e2 82 ac
        assert_eq!(utf8_complete_prefix(b""), Some(0));
        assert_eq!(utf8_complete_prefix(b"abc"), Some(3));
        assert_eq!(utf8_complete_prefix(euro), Some(3));
        assert_eq!(utf8_complete_prefix(&euro[..2]), Some(0));
        let mut long = b"x".repeat(100);
        long.extend_from_slice(&euro[..1]);
        assert_eq!(utf8_complete_prefix(&long), Some(100));
        // 0xf4 0x90 starts a code point above U+10FFFF: no continuation can save it.
        assert_eq!(utf8_complete_prefix(&[b'a', 0xf4, 0x90]), None);
        assert_eq!(utf8_complete_prefix(&[0xff]), None);
        assert_eq!(utf8_complete_prefix(&[0xed, 0xa0]), None, "surrogate");
        long.pop();
        long.extend_from_slice(&[0xc0, 0x80]);
        assert_eq!(utf8_complete_prefix(&long), None, "overlong");
    }

    #[test]
    fn ascii_check_agrees_with_std_at_every_length_and_position() {
        for len in 0..80 {
            let plain = vec![b'a'; len];
            assert!(is_ascii(&plain), "{len} ascii bytes");
            for at in 0..len {
                let mut high = plain.clone();
                high[at] = 0x80;
                assert!(!is_ascii(&high), "a high byte at {at} of {len}");
                assert_eq!(is_ascii(&high), high.is_ascii());
            }
        }
    }

    #[test]
    fn agrees_with_std_on_short_and_long_inputs() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"plain ascii".to_vec(),
            "h\u{e9}llo \u{1f600}".as_bytes().to_vec(),
            vec![0xff],
            vec![0xed, 0xa0, 0x80], // a surrogate
            vec![0xe2, 0x82],       // truncated sequence
        ];
        for case in cases.clone() {
            let mut long = b"x".repeat(100);
            long.extend_from_slice(&case);
            long.extend_from_slice(&b"y".repeat(100));
            cases.push(long);
        }
        for case in cases {
            assert_eq!(
                is_utf8(&case),
                std::str::from_utf8(&case).is_ok(),
                "{case:?}"
            );
        }
    }
}
