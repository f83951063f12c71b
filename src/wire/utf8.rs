//! The one UTF-8 check for text arriving from the network (WebSocket text frames, MessagePack
//! strs): short strings, nearly always ASCII in WAMP, take the word-wise ASCII scan; long ones
//! the SIMD validator, which checks 32-64 bytes per step.

/// Below this many bytes the ASCII scan wins over the SIMD validator's set-up.
const SIMD_FROM: usize = 64;

/// True when `bytes` is valid UTF-8.
#[inline]
pub fn is_utf8(bytes: &[u8]) -> bool {
    if bytes.len() < SIMD_FROM {
        bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
    } else {
        simdutf8::basic::from_utf8(bytes).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
