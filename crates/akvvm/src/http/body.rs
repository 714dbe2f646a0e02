//! Answer bodies read within a limit: [`read_body`] for reqwest answers (IMDS, Azure Arc,
//! Entra ID), [`capped_stream`] for the SDK's body stream (Key Vault). Every body the agent reads
//! goes through one of them.

/// The largest answer body the agent reads, from any server (Key Vault through the SDK, IMDS,
/// Azure Arc, Entra ID). A Key Vault secret is at most 25 KiB (about 34 KiB of base64 in JSON);
/// a token answer a few KiB. A larger answer is an error, read no further.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads `response`'s body, failing once it exceeds `limit` bytes (the rest is never read).
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = zeroize::Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why [`read_body`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Read(reqwest::Error),
}

/// `stream`, ending with an error once more than `limit` bytes have come through it (and
/// read no further).
pub fn capped_stream<S, E>(
    stream: S,
    limit: usize,
    too_large: impl Fn(usize) -> E + Send + 'static,
) -> impl futures::Stream<Item = Result<hyper::body::Bytes, E>> + Send
where
    S: futures::Stream<Item = Result<hyper::body::Bytes, E>> + Send,
    E: Send,
{
    use futures::StreamExt as _;
    stream.scan((0usize, false), move |(seen, ended), chunk| {
        if *ended {
            return futures::future::ready(None);
        }
        let item = chunk.and_then(|chunk| {
            *seen = seen.saturating_add(chunk.len());
            if *seen > limit {
                Err(too_large(limit))
            } else {
                Ok(chunk)
            }
        });
        *ended = item.is_err();
        futures::future::ready(Some(item))
    })
}
