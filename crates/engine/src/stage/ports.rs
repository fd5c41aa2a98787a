//! Host ports the VM will listen on, bound while staging so a taken one is an error before
//! anything boots rather than a QEMU failure; they are released just before the VM starts.

use super::error::StageError;
use crate::plan::PortUse;
use std::io::ErrorKind;
use std::net::TcpListener;

pub(super) fn reserve(ports: &[PortUse]) -> Result<Vec<TcpListener>, StageError> {
    ports
        .iter()
        .map(|wanted| {
            TcpListener::bind(("127.0.0.1", wanted.port)).map_err(|source| {
                let (port, what) = (wanted.port, wanted.what.clone());
                if source.kind() == ErrorKind::AddrInUse {
                    StageError::PortInUse { port, what }
                } else {
                    StageError::Port { port, what, source }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_refused_naming_the_flag() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let wanted = [PortUse {
            port,
            what: "--gdb".into(),
        }];
        let error = reserve(&wanted).unwrap_err().to_string();
        assert!(
            error.contains(&format!("127.0.0.1:{port} for --gdb: the port is in use")),
            "{error}"
        );
        drop(taken);
        assert_eq!(reserve(&wanted).unwrap().len(), 1);
    }
}
