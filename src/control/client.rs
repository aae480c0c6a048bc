//! The CLI side of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use weft_engine::EngineError;

use super::{Method, Request, Response, SOCKET_ENV};

/// How long the daemon may take to answer (a status call waits for the BGP threads).
const TIMEOUT: Duration = Duration::from_secs(40);

/// Asks the daemon at `socket` and returns its answer. A daemon that is not running (no
/// socket, or nobody listening on it) is an error that says how to start or find it.
pub fn call(socket: &Path, method: Method) -> Result<serde_json::Value, EngineError> {
    let mut stream = UnixStream::connect(socket).map_err(|e| not_running(socket, &e))?;
    let io = |e: std::io::Error| {
        EngineError::System(format!("control socket {}: {e}", socket.display()))
    };
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_string(&Request { method }).expect("request serializes");
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    let response: Response = serde_json::from_str(answer.trim()).map_err(|e| {
        EngineError::System(format!(
            "control socket {}: the answer is not weft's ({e}); is it another program's socket?",
            socket.display()
        ))
    })?;
    match (response.result, response.error) {
        (_, Some(error)) => Err(EngineError::Invalid(error)),
        (Some(result), None) => Ok(result),
        (None, None) => Err(EngineError::System(format!(
            "control socket {}: an empty answer",
            socket.display()
        ))),
    }
}

fn not_running(socket: &Path, e: &std::io::Error) -> EngineError {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "there is no control socket".to_string(),
        std::io::ErrorKind::ConnectionRefused => {
            "nothing answers on the control socket (a daemon that stopped left it)".to_string()
        }
        _ => e.to_string(),
    };
    EngineError::System(format!(
        "weft daemon is not running here: {why} at {}; start `weft daemon`, or point \
         --control-socket (or {SOCKET_ENV}) at the socket of the daemon you mean",
        socket.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_daemon_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.sock");
        let e = call(&path, Method::Info).unwrap_err().to_string();
        assert!(e.contains("weft daemon is not running"), "{e}");
        assert!(e.contains("there is no control socket"), "{e}");
        assert!(e.contains("--control-socket"), "{e}");
        // A socket file nobody listens on (a daemon killed with SIGKILL leaves one).
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let e = call(&path, Method::Info).unwrap_err().to_string();
        assert!(e.contains("nothing answers"), "{e}");
    }
}
