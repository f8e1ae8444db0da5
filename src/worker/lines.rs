//! The CLI's output as lines, each at most [`MAX_LINE_BYTES`]: stdout parsed
//! into typed [`CliLine`]s for the worker (a longer line gets the process
//! killed) and stderr for the log (bytes that are not UTF-8 shown lossily,
//! never the end).

use futures_util::stream;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::oneshot;

use super::protocol::CliLine;

/// Longest stdout line taken from the CLI. A `result` line carries a whole
/// answer, so the cap is generous; a longer line means a broken process,
/// whose output would otherwise be buffered without limit. The process is
/// killed, which fails its job and replaces the worker.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Logs each stderr line, as bytes: one that is not UTF-8 is logged
/// lossily and the lines after it are still read. Lines are capped like
/// stdout's; the rest of an overlong one is dropped.
pub(super) async fn drain_stderr(stderr: impl AsyncRead + Unpin, name: String) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(Line::Complete) => {}
            Ok(Line::TooLong) => {
                log::warn!("{name} stderr: (a line over {MAX_LINE_BYTES} bytes; the rest of stderr is dropped)");
                return;
            }
            Ok(Line::Eof) | Err(_) => return,
        }
        let line = String::from_utf8_lossy(&buf);
        log::warn!("{name} stderr: {}", line.trim_end_matches(['\n', '\r']));
    }
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (its `\n` included, unless it ended at EOF).
    Complete,
    /// More than the cap without a `\n`: `buf` holds what was read.
    TooLong,
    /// Nothing left.
    Eof,
}

/// Reads one line into `buf`, never holding more than `cap` bytes of it.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > cap {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(Line::Complete);
        }
    }
}

/// Stdout as typed lines (empty ones skipped). A line over `cap` is
/// reported as [`CliLine::TooLong`], ends the stream and asks the reaper,
/// through `overflow`, to kill the process.
pub(super) fn read_lines(
    stdout: impl AsyncRead + Unpin + Send + 'static,
    cap: usize,
    overflow: oneshot::Sender<String>,
) -> impl stream::Stream<Item = CliLine> {
    let state = (BufReader::new(stdout), Some(overflow));
    stream::unfold(state, move |(mut reader, overflow)| async move {
        let overflow = overflow?;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_line(&mut reader, &mut buf, cap).await {
                Ok(Line::Complete) => match CliLine::parse(&buf) {
                    Some(line) => return Some((line, (reader, Some(overflow)))),
                    None => continue,
                },
                Ok(Line::TooLong) => {
                    let why = format!("a stdout line over {} MiB; killed", cap / (1024 * 1024));
                    let _ = overflow.send(why);
                    return Some((CliLine::TooLong { cap }, (reader, None)));
                }
                Ok(Line::Eof) | Err(_) => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn lines(input: &[u8], cap: usize) -> Vec<(Line, Vec<u8>)> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            let line = read_line(&mut reader, &mut buf, cap).await.unwrap();
            let stop = line != Line::Complete;
            out.push((line, buf));
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn lines_are_read_whole_up_to_the_cap() {
        let out = lines(b"one\n\xff\xfe two\nlast", 16).await;
        let texts: Vec<&[u8]> = out.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(texts, [&b"one\n"[..], b"\xff\xfe two\n", b"last", b""]);
        assert_eq!(out.last().unwrap().0, Line::Eof);

        // Exactly the cap passes; one byte more does not, and is not kept.
        let out = lines(b"0123456789\n0123456789x\n", 11).await;
        assert_eq!(out[0], (Line::Complete, b"0123456789\n".to_vec()));
        assert_eq!(out[1].0, Line::TooLong);
        assert!(out[1].1.len() <= 11, "{} bytes held", out[1].1.len());
    }

    #[tokio::test]
    async fn an_overlong_stdout_line_ends_the_stream_and_says_why() {
        let (tx, rx) = oneshot::channel();
        let input: &'static [u8] =
            b"{\"type\":\"user\"}\n\nnoise\n0123456789abcdefghij\n{\"never\":1}\n";
        let got: Vec<CliLine> = read_lines(input, 18, tx).collect().await;
        assert!(matches!(got[0], CliLine::Message(_)), "{got:?}");
        assert!(
            matches!(&got[1], CliLine::NotJson(t) if t == "noise"),
            "{got:?}"
        );
        assert!(matches!(got[2], CliLine::TooLong { cap: 18 }), "{got:?}");
        assert_eq!(got.len(), 3, "nothing after an overlong line");
        assert!(rx.await.unwrap().contains("stdout line over"));
    }
}
