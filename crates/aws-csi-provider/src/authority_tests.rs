//! Unit tests of the `:authority` rewriter: framing, HPACK state across requests, chunking.

use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn request(authority: &str) -> HeaderList {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/v1alpha1.CSIDriverProvider/Version"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

/// (type, flags, stream, payload) of one frame.
type Frame = (u8, u8, u32, Vec<u8>);
/// A decoded header block.
type HeaderList = Vec<(Vec<u8>, Vec<u8>)>;

/// Splits the server-bound bytes into frames and decodes every header block.
fn parse(bytes: &[u8]) -> (Vec<Frame>, Vec<HeaderList>) {
    assert!(bytes.starts_with(PREFACE));
    let mut at = PREFACE.len();
    let (mut frames, mut blocks) = (Vec::new(), Vec::new());
    let mut decoder = fluke_hpack::Decoder::new();
    let mut block = Vec::new();
    while at < bytes.len() {
        let h = &bytes[at..at + 9];
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let payload = bytes[at + 9..at + 9 + len].to_vec();
        assert!(len <= MAX_FRAME, "frame of {len} bytes");
        if h[3] == HEADERS || h[3] == CONTINUATION {
            let skip = if h[3] == HEADERS && h[4] & PRIORITY != 0 {
                5
            } else {
                0
            };
            block.extend_from_slice(&payload[skip..]);
            if h[4] & END_HEADERS != 0 {
                blocks.push(decoder.decode(&block).expect("decodable"));
                block.clear();
            }
        }
        frames.push((h[3], h[4], stream, payload));
        at += 9 + len;
    }
    (frames, blocks)
}

fn run(input: &[u8], chunk: usize) -> Vec<u8> {
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        r.feed(piece, &mut out).expect("valid input");
    }
    r.finish(&mut out);
    out
}

#[test]
fn socket_path_authorities_become_localhost_across_indexed_requests() {
    // The client's encoder indexes headers: the second request refers to the first one's
    // dynamic-table entries, so the rewriter must keep the client's table.
    let mut enc = fluke_hpack::Encoder::new();
    let headers = |auth: &str| request(auth);
    let first = enc.encode(
        headers("%2Ftmp%2Fp%2Faws.sock")
            .iter()
            .map(|(n, v)| (&n[..], &v[..])),
    );
    let second = enc.encode(
        headers("%2Ftmp%2Fp%2Faws.sock")
            .iter()
            .map(|(n, v)| (&n[..], &v[..])),
    );
    let third = enc.encode(
        headers("localhost:1234")
            .iter()
            .map(|(n, v)| (&n[..], &v[..])),
    );
    let data = frame(0x0, END_STREAM, 1, b"\0\0\0\0\x02\x0a\x00");
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[]));
    input.extend(frame(HEADERS, END_HEADERS, 1, &first));
    input.extend(&data);
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &second));
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &third));
    for chunk in [1, 3, 7, 64, 100_000] {
        let out = run(&input, chunk);
        let (frames, blocks) = parse(&out);
        assert_eq!(blocks.len(), 3, "chunk {chunk}");
        let authority = |b: &HeaderList| {
            b.iter()
                .find(|(n, _)| n == b":authority")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(authority(&blocks[0]).as_deref(), Some("localhost"));
        assert_eq!(authority(&blocks[1]).as_deref(), Some("localhost"));
        assert_eq!(authority(&blocks[2]).as_deref(), Some("localhost:1234"));
        let mut expected = headers("localhost");
        assert_eq!(blocks[0], expected);
        expected[3].1 = b"localhost:1234".to_vec();
        assert_eq!(blocks[2], expected);
        // Everything else is byte-identical: SETTINGS, DATA, flags, stream ids.
        assert_eq!(frames[0], (0x4, 0, 0, vec![]));
        assert_eq!(frames[2], (0x0, END_STREAM, 1, data[9..].to_vec()));
        assert_eq!((frames[3].1, frames[3].2), (END_HEADERS | END_STREAM, 3));
    }
}

#[test]
fn huffman_padding_priority_and_continuation() {
    // RFC 7541 C.4.1: GET http://www.example.com/ with a Huffman-coded authority.
    let rfc: &[u8] = &[
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];
    let mut payload = vec![3u8]; // pad length
    payload.extend([0x80, 0, 0, 0, 16]); // priority: exclusive, stream 0, weight 16
    payload.extend(&rfc[..5]);
    payload.extend([0, 0, 0]);
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 1, &payload));
    input.extend(frame(CONTINUATION, 0, 1, &rfc[5..9]));
    input.extend(frame(CONTINUATION, END_HEADERS, 1, &rfc[9..]));
    let out = run(&input, 5);
    let (frames, blocks) = parse(&out);
    assert_eq!(frames.len(), 1, "one HEADERS frame, no padding");
    assert_eq!(frames[0].1, PRIORITY | END_STREAM | END_HEADERS);
    assert_eq!(&frames[0].3[..5], &[0x80, 0, 0, 0, 16]);
    let names: Vec<(String, String)> = blocks[0]
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com")
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
}

#[test]
fn big_blocks_are_split_into_continuations() {
    let mut headers = request("/raw/socket/path");
    headers.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
    let mut enc = fluke_hpack::Encoder::new();
    let block = enc.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
    let mut input = PREFACE.to_vec();
    for (i, piece) in block.chunks(MAX_FRAME).enumerate() {
        let last = (i + 1) * MAX_FRAME >= block.len();
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        input.extend(frame(kind, if last { END_HEADERS } else { 0 }, 1, piece));
    }
    let (frames, blocks) = parse(&run(&input, 4096));
    assert!(frames.len() >= 3);
    assert_eq!(blocks[0][3].1, b"localhost");
    assert_eq!(blocks[0][6].1.len(), 40_000);
}

#[test]
fn bad_input_is_an_error_or_passes_through_never_a_panic() {
    // Not HTTP/2 at all: unchanged (the server answers it).
    assert_eq!(run(b"GET / HTTP/1.1\r\n\r\n", 4), b"GET / HTTP/1.1\r\n\r\n");
    // A truncated HPACK integer (the decoder would panic on it), a bad index, a
    // CONTINUATION out of place, padding longer than the frame.
    for bad in [
        frame(HEADERS, END_HEADERS, 1, &[0x3f]),
        frame(HEADERS, END_HEADERS, 1, &[0xff, 0x7f]),
        frame(CONTINUATION, END_HEADERS, 1, &[0x82]),
        frame(HEADERS, END_HEADERS | PADDED, 1, &[9, 0x82]),
        frame(
            HEADERS,
            END_HEADERS,
            1,
            &[0x3f, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ),
    ] {
        let mut input = PREFACE.to_vec();
        input.extend(bad);
        let mut r = Rewriter::default();
        assert!(r.feed(&input, &mut Vec::new()).is_err());
    }
    // Incomplete input at EOF goes through as it is.
    let mut input = PREFACE.to_vec();
    input.extend(&frame(HEADERS, END_HEADERS, 1, &[0x82, 0x86])[..10]);
    assert_eq!(run(&input, 3), input);
}

#[test]
fn authority_validity_is_h2s() {
    for ok in [
        "localhost",
        "localhost:50051",
        "127.0.0.1:80",
        "[::1]:1",
        "a.b-c",
    ] {
        assert!(valid_authority(ok.as_bytes()), "{ok}");
    }
    for bad in ["/tmp/x.sock", "%2Ftmp%2Fx.sock", "", "unix:/a", "a b"] {
        assert!(!valid_authority(bad.as_bytes()), "{bad}");
    }
}

/// A header block of one 4 KiB literal (indexed into the dynamic table) and `refs` one-byte
/// references to it: decoded, (refs + 1) × 4037 bytes.
fn amplified_block(refs: usize) -> Vec<u8> {
    let mut block = vec![0x40];
    for s in [b"x-big".as_slice(), &[b'a'; 4000]] {
        let _ = fluke_hpack::encoder::encode_integer_into(s.len(), 7, 0, &mut block);
        block.extend_from_slice(s);
    }
    block.extend(std::iter::repeat_n(0x80 | 62, refs));
    block
}

fn headers_input(block: &[u8]) -> Vec<u8> {
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, block));
    input
}

#[test]
fn decoded_header_lists_are_capped() {
    // 16 × 4037 = 64,592 bytes decoded: within the 64 KiB cap, rewritten.
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    r.feed(&headers_input(&amplified_block(15)), &mut out)
        .expect("within the cap");
    assert!(out.len() > 64_000, "{}", out.len());
    // 101 × 4037 bytes from a 4 KiB block: refused, and nothing of it is kept.
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    let e = r
        .feed(&headers_input(&amplified_block(100)), &mut out)
        .expect_err("over the cap");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(
        e.to_string().contains("407737 bytes") && e.to_string().contains("65536"),
        "{e}"
    );
    assert_eq!(out, PREFACE, "no header bytes passed on");
}

#[test]
fn oversized_header_frames_are_refused() {
    let block = vec![0u8; MAX_HEADER_LIST + 1];
    let mut r = Rewriter::default();
    let e = r
        .feed(&headers_input(&block), &mut Vec::new())
        .expect_err("too big");
    assert!(e.to_string().contains("65536"), "{e}");
}
