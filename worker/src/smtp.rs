//! Sending a plain-text e-mail through an SMTP relay (RFC 5321): EHLO, MAIL
//! FROM, RCPT TO, DATA, QUIT over one TCP connection, without TLS or
//! authentication — for a relay on the local network (a Postfix or an
//! Exchange connector that forwards on).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpOptions {
    /// The relay's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The sender address.
    pub from: String,
}

/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `body` with `subject` to `to`.
pub async fn send(
    options: &SmtpOptions,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), String> {
    tokio::time::timeout(TIMEOUT, exchange(options, to, subject, body))
        .await
        .map_err(|_| format!("SMTP {}:{}: timed out", options.host, options.port))?
}

async fn exchange(o: &SmtpOptions, to: &[String], subject: &str, body: &str) -> Result<(), String> {
    let at = format!("{}:{}", o.host, o.port);
    let stream = TcpStream::connect(&at)
        .await
        .map_err(|e| format!("SMTP {at}: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let expect =
        async |read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, what: &str, codes: &[u16]| {
            let (code, text) = reply(read)
                .await
                .map_err(|e| format!("SMTP {at} {what}: {e}"))?;
            if codes.contains(&code) {
                Ok(())
            } else {
                Err(format!("SMTP {at} {what}: {code} {text}"))
            }
        };
    expect(&mut read, "greeting", &[220]).await?;
    let say = async |write: &mut tokio::net::tcp::OwnedWriteHalf, line: &str| {
        write
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| format!("SMTP {}:{}: {e}", o.host, o.port))
    };
    say(&mut write, "EHLO weir").await?;
    expect(&mut read, "EHLO", &[250]).await?;
    say(&mut write, &format!("MAIL FROM:<{}>", o.from)).await?;
    expect(&mut read, "MAIL FROM", &[250]).await?;
    for addr in to {
        say(&mut write, &format!("RCPT TO:<{addr}>")).await?;
        expect(&mut read, &format!("RCPT TO {addr}"), &[250, 251]).await?;
    }
    say(&mut write, "DATA").await?;
    expect(&mut read, "DATA", &[354]).await?;
    let message = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n.",
        o.from,
        to.join(", "),
        subject.replace(['\r', '\n'], " "),
        chrono::Utc::now().to_rfc2822(),
        stuffed(body)
    );
    say(&mut write, &message).await?;
    expect(&mut read, "the message", &[250]).await?;
    say(&mut write, "QUIT").await?;
    let _ = reply(&mut read).await;
    Ok(())
}

/// The body with CRLF line ends and a leading `.` doubled (RFC 5321 §4.5.2).
fn stuffed(body: &str) -> String {
    body.lines()
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// One reply: its code and the text of its last line (`250-…` lines continue).
async fn reply(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<(u16, String)> {
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let line = line.trim_end();
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, line.get(4..).unwrap_or_default().to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dots_are_doubled() {
        assert_eq!(stuffed("a\n.b\n..c"), "a\r\n..b\r\n...c");
    }
}
