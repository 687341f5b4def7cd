//! Built-in names for clinical and infrastructure services, used by
//! `suggest` when the policy has no service of its own for a port.
//!
//! Each entry is a name valid in `.ward`, its ports and what it is. Sources:
//! the IANA service registry and the vendors' published port lists (DICOM
//! PS3.15, HL7 v2 MLLP, Philips IntelliVue, ATNA per IHE ITI TF-2).

/// One catalog service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    /// `(protocol, port or ICMP type)`.
    pub atoms: &'static [(u8, u16)],
    pub what: &'static str,
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The catalog, most specific first.
#[rustfmt::skip]
pub const CATALOG: &[Entry] = &[
    // Clinical.
    Entry { name: "dicom", atoms: &[(TCP, 104), (TCP, 11112)], what: "DICOM (image storage, query, retrieve)" },
    Entry { name: "dicom-tls", atoms: &[(TCP, 2762)], what: "DICOM over TLS" },
    Entry { name: "hl7-mllp", atoms: &[(TCP, 2575)], what: "HL7 v2 over MLLP" },
    Entry { name: "intellivue", atoms: &[(UDP, 24005), (UDP, 24105)], what: "Philips IntelliVue data export and discovery" },
    Entry { name: "atna-syslog", atoms: &[(UDP, 514), (TCP, 6514)], what: "IHE ATNA audit records (syslog, syslog over TLS)" },
    Entry { name: "fhir-https", atoms: &[(TCP, 8443)], what: "HTTPS on the alternate port (FHIR servers, device managers)" },
    Entry { name: "poct1a", atoms: &[(TCP, 2576)], what: "POCT1-A point-of-care device connectivity" },
    // Infrastructure.
    Entry { name: "dns", atoms: &[(UDP, 53), (TCP, 53)], what: "DNS" },
    Entry { name: "ntp", atoms: &[(UDP, 123)], what: "NTP" },
    Entry { name: "https", atoms: &[(TCP, 443)], what: "HTTPS" },
    Entry { name: "http", atoms: &[(TCP, 80)], what: "HTTP" },
    Entry { name: "http-alt", atoms: &[(TCP, 8080)], what: "HTTP on the alternate port" },
    Entry { name: "http-proxy", atoms: &[(TCP, 3128)], what: "HTTP proxy" },
    Entry { name: "ssh", atoms: &[(TCP, 22)], what: "SSH" },
    Entry { name: "telnet", atoms: &[(TCP, 23)], what: "Telnet (unencrypted: review)" },
    Entry { name: "ftp", atoms: &[(TCP, 21)], what: "FTP (unencrypted: review)" },
    Entry { name: "tftp", atoms: &[(UDP, 69)], what: "TFTP (device firmware, PXE)" },
    Entry { name: "rdp", atoms: &[(TCP, 3389)], what: "Remote Desktop" },
    Entry { name: "vnc", atoms: &[(TCP, 5900)], what: "VNC remote control" },
    Entry { name: "smb", atoms: &[(TCP, 445)], what: "SMB file sharing" },
    Entry { name: "netbios", atoms: &[(UDP, 137), (UDP, 138), (TCP, 139)], what: "NetBIOS" },
    Entry { name: "ldap", atoms: &[(TCP, 389)], what: "LDAP" },
    Entry { name: "ldaps", atoms: &[(TCP, 636)], what: "LDAP over TLS" },
    Entry { name: "kerberos", atoms: &[(UDP, 88), (TCP, 88)], what: "Kerberos" },
    Entry { name: "snmp", atoms: &[(UDP, 161)], what: "SNMP" },
    Entry { name: "snmp-trap", atoms: &[(UDP, 162)], what: "SNMP traps" },
    Entry { name: "syslog", atoms: &[(UDP, 514)], what: "syslog" },
    Entry { name: "dhcp", atoms: &[(UDP, 67)], what: "DHCP (relayed)" },
    Entry { name: "smtp", atoms: &[(TCP, 25)], what: "SMTP" },
    Entry { name: "submission", atoms: &[(TCP, 587)], what: "mail submission" },
    Entry { name: "imaps", atoms: &[(TCP, 993)], what: "IMAP over TLS" },
    Entry { name: "mssql", atoms: &[(TCP, 1433)], what: "Microsoft SQL Server" },
    Entry { name: "oracle", atoms: &[(TCP, 1521)], what: "Oracle database" },
    Entry { name: "postgres", atoms: &[(TCP, 5432)], what: "PostgreSQL" },
    Entry { name: "mysql", atoms: &[(TCP, 3306)], what: "MySQL" },
    Entry { name: "ipp", atoms: &[(TCP, 631)], what: "IPP printing" },
    Entry { name: "jetdirect", atoms: &[(TCP, 9100)], what: "raw printing (label and wristband printers)" },
    Entry { name: "radius", atoms: &[(UDP, 1812), (UDP, 1813)], what: "RADIUS" },
    Entry { name: "ipsec", atoms: &[(UDP, 500), (UDP, 4500)], what: "IPsec IKE" },
    Entry { name: "openvpn", atoms: &[(UDP, 1194)], what: "OpenVPN" },
    Entry { name: "sip", atoms: &[(UDP, 5060), (TCP, 5060)], what: "SIP (nurse call, VoIP)" },
    Entry { name: "sips", atoms: &[(TCP, 5061)], what: "SIP over TLS" },
    Entry { name: "rtsp", atoms: &[(TCP, 554)], what: "RTSP (video streams, cameras)" },
    Entry { name: "mqtt", atoms: &[(TCP, 1883)], what: "MQTT" },
    Entry { name: "mqtts", atoms: &[(TCP, 8883)], what: "MQTT over TLS" },
    Entry { name: "bacnet", atoms: &[(UDP, 47808)], what: "BACnet/IP (building management)" },
    Entry { name: "modbus", atoms: &[(TCP, 502)], what: "Modbus/TCP" },
    Entry { name: "opc-ua", atoms: &[(TCP, 4840)], what: "OPC UA" },
    Entry { name: "ping", atoms: &[(ICMP, 8), (ICMPV6, 128)], what: "ping" },
];

/// Catalog entries containing `(proto, port)`, in catalog order.
pub fn lookup(proto: u8, port: u16) -> impl Iterator<Item = &'static Entry> {
    CATALOG
        .iter()
        .filter(move |e| e.atoms.contains(&(proto, port)))
}

/// A port a server listens on: below 1024, or in the catalog.
#[must_use]
pub fn is_well_known(proto: u8, port: u16) -> bool {
    port < 1024 || lookup(proto, port).next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_ward_names_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for e in CATALOG {
            assert!(seen.insert(e.name), "{} twice", e.name);
            let src = format!("service {} = tcp/1\n", e.name);
            let loaded = wardgate_lang::parse_str("c.ward", &src);
            assert!(!loaded.has_errors(), "{}: {:?}", e.name, loaded.diagnostics);
        }
    }

    #[test]
    fn clinical_ports_have_names() {
        assert_eq!(lookup(6, 104).next().unwrap().name, "dicom");
        assert_eq!(lookup(6, 2575).next().unwrap().name, "hl7-mllp");
        assert_eq!(lookup(17, 47808).next().unwrap().name, "bacnet");
        assert!(is_well_known(6, 11112));
        assert!(!is_well_known(6, 40000));
    }
}
