//! A tiny HTTP/1.0 server the system tests run under a chosen process name (copied to `kube-proxy`, say), so
//! that the socket answering on a port belongs to a process of that name: `answer-http ADDR READY PATH=CODE:BODY...`
//! listens on ADDR, creates the file READY, and answers each PATH with CODE and BODY until killed.

use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(ready)) = (args.first(), args.get(1)) else {
        eprintln!("usage: answer-http ADDR READY PATH=CODE:BODY...");
        std::process::exit(64);
    };
    let answers: Vec<(String, String, String)> = args[2..]
        .iter()
        .filter_map(|a| {
            let (path, rest) = a.split_once('=')?;
            let (code, body) = rest.split_once(':')?;
            Some((path.to_string(), code.to_string(), body.to_string()))
        })
        .collect();
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("answer-http: bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = std::fs::write(ready, "") {
        eprintln!("answer-http: {ready}: {e}");
        std::process::exit(1);
    }
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]);
        let path = req.split_whitespace().nth(1).unwrap_or("");
        let (code, body) =
            answers.iter().find(|(p, _, _)| p == path).map(|(_, c, b)| (c.as_str(), b.as_str())).unwrap_or(("404", ""));
        let _ = write!(s, "HTTP/1.0 {code} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    }
}
