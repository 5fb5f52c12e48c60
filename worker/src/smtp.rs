//! Sending a plain-text e-mail through an SMTP server (RFC 5321): EHLO,
//! optionally STARTTLS (RFC 3207) or TLS from the start, optionally AUTH
//! PLAIN (RFC 4954), then MAIL FROM, RCPT TO, DATA and QUIT over one
//! connection. A login is never sent over a connection without TLS.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
pub use weir_core::config::{SmtpConfig as SmtpOptions, SmtpTls};

/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `body` with `subject` to `to`.
pub async fn send(
    options: &SmtpOptions,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), String> {
    let at = format!("SMTP {}:{}", options.host, options.port);
    tokio::time::timeout(TIMEOUT, exchange(options, to, subject, body))
        .await
        .map_err(|_| format!("{at}: timed out"))?
        .map_err(|e| format!("{at}: {e}"))
}

async fn exchange(o: &SmtpOptions, to: &[String], subject: &str, body: &str) -> Result<(), String> {
    let tls = o.tls();
    if tls == SmtpTls::None && o.username.is_some() {
        return Err(
            "a login is set but tls is none: weir never sends a password in clear (set [smtp] tls)"
                .into(),
        );
    }
    let tcp = TcpStream::connect((o.host.as_str(), o.port))
        .await
        .map_err(|e| e.to_string())?;
    let mail = Mail { to, subject, body };
    match tls {
        SmtpTls::None => {
            let mut s = BufReader::new(tcp);
            expect(&mut s, "greeting", &[220]).await?;
            ehlo(&mut s).await?;
            deliver(&mut s, o, &mail).await
        }
        SmtpTls::Tls => {
            let mut s = BufReader::new(handshake(o, tcp).await?);
            expect(&mut s, "greeting", &[220]).await?;
            ehlo(&mut s).await?;
            deliver(&mut s, o, &mail).await
        }
        SmtpTls::StartTls => {
            let mut s = BufReader::new(tcp);
            expect(&mut s, "greeting", &[220]).await?;
            let offers = ehlo(&mut s).await?;
            if !offers.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                return Err("the server does not offer STARTTLS (tls = starttls)".into());
            }
            say(&mut s, "STARTTLS").await?;
            expect(&mut s, "STARTTLS", &[220]).await?;
            let mut s = BufReader::new(handshake(o, s.into_inner()).await?);
            ehlo(&mut s).await?;
            deliver(&mut s, o, &mail).await
        }
    }
}

/// What to send.
struct Mail<'a> {
    to: &'a [String],
    subject: &'a str,
    body: &'a str,
}

/// The login if any, then the message, then QUIT.
async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    o: &SmtpOptions,
    m: &Mail<'_>,
) -> Result<(), String> {
    if let Some(user) = &o.username {
        let secret = format!("\0{user}\0{}", o.password.as_deref().unwrap_or_default());
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        say(s, &format!("AUTH PLAIN {encoded}")).await?;
        expect(s, "AUTH", &[235]).await?;
    }
    say(s, &format!("MAIL FROM:<{}>", o.from)).await?;
    expect(s, "MAIL FROM", &[250]).await?;
    for addr in m.to {
        say(s, &format!("RCPT TO:<{addr}>")).await?;
        expect(s, &format!("RCPT TO {addr}"), &[250, 251]).await?;
    }
    say(s, "DATA").await?;
    expect(s, "DATA", &[354]).await?;
    let message = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n.",
        o.from,
        m.to.join(", "),
        header_text(m.subject),
        chrono::Utc::now().to_rfc2822(),
        stuffed(m.body)
    );
    say(s, &message).await?;
    expect(s, "the message", &[250]).await?;
    say(s, "QUIT").await?;
    let _ = reply(s).await;
    Ok(())
}

/// EHLO; answers the extensions the server offers.
async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
) -> Result<Vec<String>, String> {
    say(s, "EHLO weir").await?;
    let (code, lines) = reply(s).await.map_err(|e| format!("EHLO: {e}"))?;
    if code != 250 {
        return Err(format!("EHLO: {code} {}", lines.join(" ")));
    }
    Ok(lines)
}

/// The TLS handshake, checking the server's certificate for its host name
/// against the system's store, the built-in roots and `ca_file`.
async fn handshake(
    o: &SmtpOptions,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let roots = roots(o.ca_file.clone()).await?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(o.host.clone())
        .map_err(|e| format!("host {}: {e}", o.host))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

/// The certificates a server's may chain to: the built-in roots and the
/// system's (read from disk once per process), and `ca_file`'s; read on the
/// blocking pool.
async fn roots(ca_file: Option<PathBuf>) -> Result<rustls::RootCertStore, String> {
    static BASE: OnceLock<rustls::RootCertStore> = OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let mut roots = BASE
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                roots
            })
            .clone();
        if let Some(path) = &ca_file {
            use rustls::pki_types::pem::PemObject;
            let at = |e: &dyn std::fmt::Display| format!("ca_file {}: {e}", path.display());
            for cert in
                rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| at(&e))?
            {
                roots.add(cert.map_err(|e| at(&e))?).map_err(|e| at(&e))?;
            }
        }
        Ok(roots)
    })
    .await
    .map_err(|e| format!("reading certificates: {e}"))?
}

async fn say<S: AsyncWrite + Unpin>(s: &mut S, line: &str) -> Result<(), String> {
    s.write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())
}

/// Reads a reply and checks its code is one of `codes`.
async fn expect<S: AsyncRead + Unpin>(
    s: &mut BufReader<S>,
    what: &str,
    codes: &[u16],
) -> Result<(), String> {
    let (code, lines) = reply(s).await.map_err(|e| format!("{what}: {e}"))?;
    if codes.contains(&code) {
        Ok(())
    } else {
        Err(format!("{what}: {code} {}", lines.join(" ")))
    }
}

/// A header value: as it is in ASCII, else RFC 2047 encoded (UTF-8, base64).
fn header_text(text: &str) -> String {
    let text = text.replace(['\r', '\n'], " ");
    if text.is_ascii() {
        text
    } else {
        format!(
            "=?utf-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
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

/// One reply: its code and the text of each line (`250-…` lines continue).
async fn reply<S: AsyncRead + Unpin>(s: &mut BufReader<S>) -> std::io::Result<(u16, Vec<String>)> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let line = line.trim_end();
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        lines.push(line.get(4..).unwrap_or_default().to_owned());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, lines));
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

    #[test]
    fn a_subject_beyond_ascii_is_encoded() {
        assert_eq!(header_text("run failed"), "run failed");
        assert_eq!(header_text("a\r\nb"), "a  b");
        assert_eq!(header_text("é"), "=?utf-8?B?w6k=?=");
    }
}
