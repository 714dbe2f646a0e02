//! BER to DER for the encodings PKCS#12 writers use: indefinite lengths become definite, and
//! constructed OCTET STRINGs are joined into one. Anything else BER allows is refused (`None`).
//! [`lenient`] decodes DER, falling back to this normalisation.

/// Decodes DER, or BER that differs from DER only in its lengths and string chunking (as some
/// PKCS#12 writers produce), by re-encoding it as DER first.
pub(super) fn lenient<T: der::DecodeOwned>(bytes: &[u8]) -> der::Result<T> {
    match T::from_der(bytes) {
        Ok(value) => Ok(value),
        Err(err) => match to_der(bytes) {
            Some(normalised) if normalised.as_slice() != bytes => {
                T::from_der(&normalised).map_err(|_| err)
            }
            _ => Err(err),
        },
    }
}

const MAX_DEPTH: usize = 32;
const OCTET_STRING: u8 = 0x04;
const OCTET_STRING_CONSTRUCTED: u8 = 0x24;

/// The DER form of `input`: decrypted content may hold keys, so the copy is wiped when dropped.
pub(super) fn to_der(input: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(input.len()));
    let mut pos = 0;
    element(input, &mut pos, &mut out, 0)?;
    (pos == input.len()).then_some(out)
}

/// `Some(None)` is the indefinite length.
fn length(input: &[u8], pos: &mut usize) -> Option<Option<usize>> {
    let first = *input.get(*pos)?;
    *pos += 1;
    match first {
        0x00..=0x7f => Some(Some(usize::from(first))),
        0x80 => Some(None),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let bytes = input.get(*pos..*pos + count)?;
            *pos += count;
            let value = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            Some(Some(value))
        }
        _ => None,
    }
}

fn element(input: &[u8], pos: &mut usize, out: &mut Vec<u8>, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let tag = *input.get(*pos)?;
    *pos += 1;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in PKCS#12
    }
    let constructed = tag & 0x20 != 0;
    match length(input, pos)? {
        Some(len) => {
            let end = pos.checked_add(len).filter(|&end| end <= input.len())?;
            if !constructed {
                write(out, tag, &input[*pos..end]);
                *pos = end;
                return Some(());
            }
            let mut content = Vec::new();
            while *pos < end {
                element(input, pos, &mut content, depth + 1)?;
            }
            (*pos == end).then_some(())?;
            finish(out, tag, &content)
        }
        None => {
            if !constructed {
                return None;
            }
            let mut content = Vec::new();
            loop {
                if input.get(*pos..*pos + 2)? == [0, 0] {
                    *pos += 2;
                    break;
                }
                element(input, pos, &mut content, depth + 1)?;
            }
            finish(out, tag, &content)
        }
    }
}

fn finish(out: &mut Vec<u8>, tag: u8, content: &[u8]) -> Option<()> {
    if tag != OCTET_STRING_CONSTRUCTED {
        write(out, tag, content);
        return Some(());
    }
    // The chunks are already DER OCTET STRINGs: join their contents.
    let mut joined = Vec::with_capacity(content.len());
    let mut pos = 0;
    while pos < content.len() {
        if content[pos] != OCTET_STRING {
            return None;
        }
        pos += 1;
        let len = length(content, &mut pos)??;
        joined.extend_from_slice(content.get(pos..pos + len)?);
        pos += len;
    }
    write(out, OCTET_STRING, &joined);
    Some(())
}

fn write(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}
