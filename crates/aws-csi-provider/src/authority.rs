//! Any `:authority` is accepted: header blocks a client sends are rewritten so that an
//! authority the HTTP/2 server would refuse becomes `localhost` before the server sees it.
//!
//! The HTTP/2 server under tonic (h2) resets every stream whose `:authority` is not a valid
//! URI authority. gRPC clients over unix sockets send the socket path there (Python's grpc
//! sends it percent-encoded, grpc-java raw), so they would get RST_STREAM(PROTOCOL_ERROR);
//! the Go driver happens to send `localhost`. [`AuthorityFix`] wraps the accepted socket:
//! client-to-server bytes pass through unchanged except HEADERS/CONTINUATION frames, whose
//! header block is decoded (HPACK, with the client's dynamic table) and re-encoded without
//! indexing, with the authority fixed. Server-to-client bytes are not touched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's initial value).
const MAX_FRAME: usize = 16_384;
/// Largest decoded header list accepted, counted as HTTP/2 counts SETTINGS_MAX_HEADER_LIST_SIZE
/// (name + value + 32 per field). The driver sends a few hundred bytes; without a cap, a small
/// block of one-byte references to a 4 KiB dynamic-table entry decodes to hundreds of
/// times its size, and the re-encoded copy would be held in memory.
pub const MAX_HEADER_LIST: usize = 64 * 1024;
/// Largest (encoded) header block accepted: an encoded field is never longer than its decoded
/// size, so a legitimate block fits [`MAX_HEADER_LIST`].
const MAX_BLOCK: usize = MAX_HEADER_LIST;
/// What an unusable authority is replaced with (what the Go driver sends).
pub const FALLBACK_AUTHORITY: &[u8] = b"localhost";

/// The client-to-server transformation, fed with bytes as they arrive.
pub struct Rewriter {
    decoder: fluke_hpack::Decoder<'static>,
    pending: Vec<u8>,
    preface_seen: bool,
    /// Not HTTP/2 with prior knowledge: everything passes unchanged (the server says why).
    raw: bool,
    /// Payload bytes of a non-header frame still to copy through.
    passthrough: usize,
    block: Option<Block>,
    rewritten: u64,
}

/// A header block being collected across HEADERS + CONTINUATION frames.
struct Block {
    stream: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

fn protocol(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = fluke_hpack::Decoder::new();
        // What the server allows (it advertises no SETTINGS_HEADER_TABLE_SIZE): a client asking
        // for more is refused, which also bounds the table's memory.
        decoder.set_max_allowed_table_size(4096);
        Self {
            decoder,
            pending: Vec::new(),
            preface_seen: false,
            raw: false,
            passthrough: 0,
            block: None,
            rewritten: 0,
        }
    }
}

impl Rewriter {
    /// How many authorities were replaced so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Consumes `input`, appending what the server should read to `out`. An error means the
    /// client broke HTTP/2 framing or HPACK; the connection should be closed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if self.raw {
            out.extend_from_slice(input);
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        let mut at = 0;
        let result = self.process(&mut at, out);
        self.pending.drain(..at);
        result
    }

    /// At end of input: whatever is incomplete goes to the server as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }

    fn process(&mut self, at: &mut usize, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let rest = &self.pending[*at..];
            if self.raw {
                out.extend_from_slice(rest);
                *at = self.pending.len();
                return Ok(());
            }
            if !self.preface_seen {
                let n = rest.len().min(PREFACE.len());
                if rest[..n] != PREFACE[..n] {
                    self.raw = true;
                    continue;
                }
                if n < PREFACE.len() {
                    return Ok(());
                }
                out.extend_from_slice(PREFACE);
                *at += PREFACE.len();
                self.preface_seen = true;
                continue;
            }
            if self.passthrough > 0 {
                let n = rest.len().min(self.passthrough);
                if n == 0 {
                    return Ok(());
                }
                out.extend_from_slice(&rest[..n]);
                *at += n;
                self.passthrough -= n;
                continue;
            }
            if rest.len() < FRAME_HEADER {
                return Ok(());
            }
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let (kind, flags) = (rest[3], rest[4]);
            let stream = [rest[5], rest[6], rest[7], rest[8]];
            if kind != HEADERS && kind != CONTINUATION {
                if self.block.is_some() {
                    return Err(protocol(format!(
                        "frame type {kind} inside a header block (CONTINUATION expected)"
                    )));
                }
                out.extend_from_slice(&rest[..FRAME_HEADER]);
                *at += FRAME_HEADER;
                self.passthrough = len;
                continue;
            }
            if len > MAX_BLOCK {
                return Err(protocol(format!(
                    "a {len}-byte header frame, over the {MAX_BLOCK}-byte limit; closing the connection"
                )));
            }
            if rest.len() < FRAME_HEADER + len {
                return Ok(());
            }
            let payload = rest[FRAME_HEADER..FRAME_HEADER + len].to_vec();
            *at += FRAME_HEADER + len;
            self.header_frame(kind, flags, stream, &payload, out)?;
        }
    }

    fn header_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: [u8; 4],
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut block = match (kind, self.block.take()) {
            (HEADERS, None) => {
                let mut body = payload;
                let mut pad = 0;
                if flags & PADDED != 0 {
                    let (&n, tail) = body
                        .split_first()
                        .ok_or_else(|| protocol("HEADERS without its pad length".into()))?;
                    pad = usize::from(n);
                    body = tail;
                }
                let priority = if flags & PRIORITY != 0 {
                    let p: [u8; 5] = body
                        .get(..5)
                        .and_then(|p| p.try_into().ok())
                        .ok_or_else(|| protocol("HEADERS too short for its priority".into()))?;
                    body = &body[5..];
                    Some(p)
                } else {
                    None
                };
                let end = body
                    .len()
                    .checked_sub(pad)
                    .ok_or_else(|| protocol("HEADERS padding longer than the frame".into()))?;
                Block {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragment: body[..end].to_vec(),
                }
            }
            (CONTINUATION, Some(mut b)) if b.stream == stream => {
                if b.fragment.len() + payload.len() > MAX_BLOCK {
                    return Err(protocol(format!(
                        "a header block over {MAX_BLOCK} bytes; closing the connection"
                    )));
                }
                b.fragment.extend_from_slice(payload);
                b
            }
            _ => return Err(protocol("CONTINUATION out of place".into())),
        };
        if flags & END_HEADERS == 0 {
            self.block = Some(block);
            return Ok(());
        }
        let encoded = self.reencode(&block.fragment)?;
        block.fragment.clear();
        write_block(&block, &encoded, out);
        Ok(())
    }

    /// Decodes a complete header block and encodes it again, fixing `:authority`.
    fn reencode(&mut self, fragment: &[u8]) -> io::Result<Vec<u8>> {
        let mut encoded = Vec::with_capacity(fragment.len() + 16);
        let mut fixed = 0;
        // Decoded size so far (RFC 9113 §6.5.2); past the cap nothing more is kept.
        let mut list_size = 0usize;
        // The decoder panics on some malformed input (a truncated integer): contain it, and
        // close the connection, as its table may be inconsistent after that.
        let decoder = &mut self.decoder;
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode_with_cb(fragment, |name, value| {
                list_size = list_size.saturating_add(name.len() + value.len() + 32);
                if list_size > MAX_HEADER_LIST {
                    return;
                }
                let value: &[u8] = if &*name == b":authority" && !valid_authority(&value) {
                    fixed += 1;
                    FALLBACK_AUTHORITY
                } else {
                    &value
                };
                literal(&name, value, &mut encoded);
            })
        }));
        match decoded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(protocol(format!("undecodable header block (HPACK): {e:?}"))),
            Err(_) => return Err(protocol("undecodable header block (HPACK)".into())),
        }
        if list_size > MAX_HEADER_LIST {
            return Err(protocol(format!(
                "a header list of {list_size} bytes decoded (HPACK), over the {MAX_HEADER_LIST}-byte limit; closing the connection"
            )));
        }
        if fixed > 0 {
            self.rewritten += fixed;
            tracing::debug!(
                "gRPC client sent an :authority the HTTP/2 server refuses (a socket path?); read as localhost"
            );
        }
        Ok(encoded)
    }
}

/// Whether h2 accepts `value` as `:authority`.
pub fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// HPACK literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2).
fn literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    for s in [name, value] {
        // Writing into a Vec cannot fail.
        let _ = fluke_hpack::encoder::encode_integer_into(s.len(), 7, 0, out);
        out.extend_from_slice(s);
    }
}

/// Frames `encoded` as HEADERS (+ CONTINUATION), no padding, each within [`MAX_FRAME`].
fn write_block(block: &Block, encoded: &[u8], out: &mut Vec<u8>) {
    let prio_len = if block.priority.is_some() { 5 } else { 0 };
    let first = encoded.len().min(MAX_FRAME - prio_len);
    let (head, mut rest) = encoded.split_at(first);
    let mut flags = 0;
    if block.end_stream {
        flags |= END_STREAM;
    }
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(head.len() + prio_len, HEADERS, flags, block.stream, out);
    if let Some(p) = block.priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(head);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let (chunk, tail) = rest.split_at(n);
        let flags = if tail.is_empty() { END_HEADERS } else { 0 };
        frame_header(n, CONTINUATION, flags, block.stream, out);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn frame_header(len: usize, kind: u8, flags: u8, stream: [u8; 4], out: &mut Vec<u8>) {
    // len ≤ MAX_FRAME, so it fits the 24-bit length field.
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream);
}

/// The accepted socket, with [`Rewriter`] on its read side.
pub struct AuthorityFix<S> {
    inner: S,
    rewriter: Rewriter,
    ready: Vec<u8>,
    ready_at: usize,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriter: Rewriter::default(),
            ready: Vec::new(),
            ready_at: 0,
            eof: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    this.ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
                this.rewriter.finish(&mut this.ready);
            } else if let Err(e) = this.rewriter.feed(read.filled(), &mut this.ready) {
                tracing::warn!(error = %e, "closing a connection to the provider socket");
                return Poll::Ready(Err(e));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for AuthorityFix<tokio::net::UnixStream> {
    type ConnectInfo = <tokio::net::UnixStream as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
