//! The guest's network: none, or QEMU's user-mode network with ports forwarded from the host.

/// The guest's network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Network {
    /// No network device at all.
    #[default]
    None,
    /// A NIC on user-mode networking: the guest is 10.0.2.15 and reaches the host's loopback
    /// as 10.0.2.2; from outside only the forwarded ports reach the guest.
    User {
        /// Host ports forwarded to guest ports.
        forwards: Vec<PortForward>,
    },
}

/// A TCP port on the host's 127.0.0.1 forwarded to a port in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    /// The port on the host's loopback.
    pub host: u16,
    /// The port in the guest.
    pub guest: u16,
}

impl PortForward {
    /// Reads `HOSTPORT:GUESTPORT`.
    pub fn parse(text: &str) -> Result<PortForward, String> {
        let port = |part: &str| part.parse::<u16>().ok().filter(|&p| p != 0);
        match text.split_once(':') {
            Some((host, guest)) => match (port(host), port(guest)) {
                (Some(host), Some(guest)) => Ok(PortForward { host, guest }),
                _ => Err(format!(
                    "`{text}`: ports are numbers from 1 to 65535 (HOSTPORT:GUESTPORT)"
                )),
            },
            None => Err(format!(
                "expected HOSTPORT:GUESTPORT (e.g. 8080:80), got `{text}`"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_are_two_nonzero_ports() {
        assert_eq!(
            PortForward::parse("8080:80"),
            Ok(PortForward {
                host: 8080,
                guest: 80
            })
        );
        for bad in [
            "8080",
            "0:80",
            "8080:0",
            "70000:80",
            "a:b",
            ":80",
            "8080:80:1",
        ] {
            assert!(PortForward::parse(bad).is_err(), "{bad}");
        }
    }
}
