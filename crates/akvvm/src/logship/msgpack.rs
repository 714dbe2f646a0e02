//! The few MessagePack encoders the Forward protocol needs (nil, booleans, integers, floats,
//! strings, arrays, maps and the EventTime extension), and a decoder for the one thing the
//! collector sends back: the `{"ack": "<chunk>"}` map. Written from the MessagePack
//! specification (github.com/msgpack/msgpack/blob/master/spec.md); smaller than a dependency.

/// Appends a string (fixstr, str 8, str 16 or str 32).
pub fn str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// Appends an array header for `n` elements (fixarray, array 16 or array 32).
pub fn array(out: &mut Vec<u8>, n: usize) {
    header(out, n, 0x90, 0xdc);
}

/// Appends a map header for `n` key-value pairs (fixmap, map 16 or map 32).
pub fn map(out: &mut Vec<u8>, n: usize) {
    header(out, n, 0x80, 0xde);
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, sixteen: u8) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(sixteen);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(sixteen + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends an unsigned integer in its shortest form.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a signed integer in its shortest form.
pub fn int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a float 64.
pub fn float(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a boolean.
pub fn boolean(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

/// Appends Fluentd's EventTime: ext type 0 in a fixext 8, seconds then nanoseconds, both
/// 32-bit big-endian (Forward Protocol Specification v1, "EventTime Ext Format").
pub fn event_time(out: &mut Vec<u8>, seconds: u32, nanoseconds: u32) {
    out.extend_from_slice(&[0xd7, 0x00]);
    out.extend_from_slice(&seconds.to_be_bytes());
    out.extend_from_slice(&nanoseconds.to_be_bytes());
}

/// What [`decode_ack`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Ack {
    /// More bytes are needed.
    Incomplete,
    /// A map with an `ack` string, and the bytes it took.
    Chunk(String, usize),
    /// Anything else: the collector does not speak the protocol.
    Invalid,
}

/// Decodes a response `{"ack": "<chunk>"}` (other string keys with string values are skipped).
pub fn decode_ack(buf: &[u8]) -> Ack {
    let mut at = 0;
    let Some(&first) = buf.first() else {
        return Ack::Incomplete;
    };
    let pairs = match first {
        0x80..=0x8f => {
            at += 1;
            usize::from(first & 0x0f)
        }
        0xde => match buf.get(1..3) {
            Some(b) => {
                at += 3;
                usize::from(u16::from_be_bytes([b[0], b[1]]))
            }
            None => return Ack::Incomplete,
        },
        _ => return Ack::Invalid,
    };
    let mut chunk = None;
    for _ in 0..pairs {
        let key = match read_str(buf, &mut at) {
            Ok(key) => key,
            Err(ack) => return ack,
        };
        let value = match read_str(buf, &mut at) {
            Ok(value) => value,
            Err(ack) => return ack,
        };
        if key == "ack" {
            chunk = Some(value);
        }
    }
    chunk.map_or(Ack::Invalid, |c| Ack::Chunk(c, at))
}

fn read_str(buf: &[u8], at: &mut usize) -> Result<String, Ack> {
    let first = *buf.get(*at).ok_or(Ack::Incomplete)?;
    let (len, head) = match first {
        0xa0..=0xbf => (usize::from(first & 0x1f), 1),
        0xd9 => (usize::from(*buf.get(*at + 1).ok_or(Ack::Incomplete)?), 2),
        0xda => {
            let b = buf.get(*at + 1..*at + 3).ok_or(Ack::Incomplete)?;
            (usize::from(u16::from_be_bytes([b[0], b[1]])), 3)
        }
        _ => return Err(Ack::Invalid),
    };
    let bytes = buf
        .get(*at + head..*at + head + len)
        .ok_or(Ack::Incomplete)?;
    *at += head + len;
    String::from_utf8(bytes.to_vec()).map_err(|_| Ack::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn encodings_follow_the_specification() {
        assert_eq!(enc(|o| str(o, "ab")), b"\xa2ab");
        assert_eq!(enc(|o| str(o, &"x".repeat(40)))[..2], [0xd9, 40]);
        assert_eq!(enc(|o| str(o, &"x".repeat(300)))[..3], [0xda, 0x01, 0x2c]);
        assert_eq!(enc(|o| array(o, 3)), [0x93]);
        assert_eq!(enc(|o| array(o, 20)), [0xdc, 0, 20]);
        assert_eq!(enc(|o| map(o, 2)), [0x82]);
        assert_eq!(enc(|o| map(o, 70000)), [0xdf, 0, 1, 0x11, 0x70]);
        assert_eq!(enc(|o| uint(o, 5)), [5]);
        assert_eq!(enc(|o| uint(o, 200)), [0xcc, 200]);
        assert_eq!(enc(|o| uint(o, 70000)), [0xce, 0, 1, 0x11, 0x70]);
        assert_eq!(enc(|o| uint(o, 1 << 40))[0], 0xcf);
        assert_eq!(enc(|o| int(o, -1)), [0xff]);
        assert_eq!(enc(|o| int(o, -100)), [0xd0, 0x9c]);
        assert_eq!(enc(|o| int(o, -1000)), [0xd1, 0xfc, 0x18]);
        assert_eq!(enc(|o| boolean(o, true)), [0xc3]);
        assert_eq!(enc(|o| float(o, 1.5))[..3], [0xcb, 0x3f, 0xf8]);
        assert_eq!(
            enc(|o| event_time(o, 1, 2)),
            [0xd7, 0, 0, 0, 0, 1, 0, 0, 0, 2]
        );
    }

    #[test]
    fn acks_are_decoded_whole_or_not_at_all() {
        let ack = enc(|o| {
            map(o, 1);
            str(o, "ack");
            str(o, "abc");
        });
        assert_eq!(decode_ack(&ack), Ack::Chunk("abc".into(), ack.len()));
        for cut in 0..ack.len() {
            assert_eq!(decode_ack(&ack[..cut]), Ack::Incomplete, "cut at {cut}");
        }
        assert_eq!(decode_ack(&[0x93]), Ack::Invalid);
        assert_eq!(decode_ack(&[0x80]), Ack::Invalid);
    }
}
